"""Tiny random-weight Idefics3 (SmolVLM-family) VLM, built offline.

Idefics3 is the small VLM architecture that vLLM's CPU build serves without
torchvision, so the embedded default pipeline and the tests caption with it. Its
weights are random: captions are English-looking noise, which is enough to exercise
every stage end to end. The same seed gives byte-identical files, so cached copies,
revisions and test expectations are stable.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GenerationConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    PreTrainedTokenizerFast,
)

from finecap.models.corpus import corpus
from finecap.models.quiet import quiet_transformers

BOS, EOS, UNK, PAD = "<s>", "<end_of_utterance>", "<unk>", "<pad>"
IMAGE_TOKEN = "<image>"
# Idefics3Processor and vLLM look all of these up; the grid tokens exist even without tiling.
SPECIAL_TOKENS = [
    UNK,
    BOS,
    "</s>",
    PAD,
    "<fake_token_around_image>",
    IMAGE_TOKEN,
    EOS,
    "<global-img>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
]
VOCAB_SIZE = 1024  # BPE target; the corpus runs out of merges first (~870), so its words are whole tokens

IMAGE_SIZE = 112
PATCH_SIZE = 14
SCALE_FACTOR = 2  # pixel shuffle: (112/14)^2 = 64 patches -> 16 LLM tokens per image
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2

# SmolVLM's prompt format: "<s>User:<image>Describe this image.<end_of_utterance>\nAssistant:".
# Accepts string content and OpenAI-style parts (vLLM passes images as "image" parts).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %} {{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ['image', 'image_url', 'image_pil'] %}<image>"
    "{% elif part['type'] == 'text' %}{% if loop.first %} {% endif %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the built-in corpus (any text encodes; captions decode to English pieces)."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=2048,
        chat_template=CHAT_TEMPLATE,
    )


def build_processor(tokenizer: PreTrainedTokenizerFast) -> Idefics3Processor:
    """One 112 px tile per image (no splitting): 16 image tokens, cheap on CPU."""
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
        do_image_splitting=False,
    )
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=CHAT_TEMPLATE,
    )


def model_config(tokenizer: PreTrainedTokenizerFast) -> Idefics3Config:
    """~1M parameters; text head size 64 (hidden 128 / 2 heads), one vLLM's CPU attention supports."""
    ids = tokenizer.convert_tokens_to_ids
    text = {
        "model_type": "llama",
        "vocab_size": len(tokenizer),
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "bos_token_id": ids(BOS),
        "eos_token_id": ids(EOS),
        "pad_token_id": ids(PAD),
    }
    vision = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
    }
    return Idefics3Config(
        text_config=text,
        vision_config=vision,
        image_token_id=ids(IMAGE_TOKEN),
        scale_factor=SCALE_FACTOR,
        pad_token_id=ids(PAD),
        tie_word_embeddings=False,
    )


def build_tiny_vlm(out_dir: Path, seed: int) -> Path:
    """Write model (safetensors), processor, tokenizer and chat template to `out_dir`; return it.

    Loads with `transformers.AutoProcessor.from_pretrained(out_dir)` and `vllm.LLM(model=out_dir)`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    config = model_config(tokenizer)
    with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG alone
        torch.manual_seed(seed)
        model = Idefics3ForConditionalGeneration(config).to(torch.float32).eval()
    ids = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        bos_token_id=ids(BOS), eos_token_id=ids(EOS), pad_token_id=ids(PAD), do_sample=False
    )
    with quiet_transformers():
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
    return out_dir
