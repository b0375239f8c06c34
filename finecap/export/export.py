"""Export a stage III checkpoint into a self-contained FineViT-VL model folder.

The folder loads with plain transformers once `finecap.export` is imported (no
trust_remote_code) and is laid out for a vLLM out-of-tree model:

  OUT/config.json               FineVitVLConfig: architectures, model_type "finevit_vl",
                                vision_config, text_config, token ids, projector dims, pixels
  OUT/model.safetensors         every weight, fp32 as trained (names below)
  OUT/generation_config.json    bos / eos / pad, greedy, max_new_tokens = stage III text_length
  OUT/preprocessor_config.json  max_pixels, min_pixels, patch 14, merge 2, scaling, resample
  OUT/tokenizer.json, OUT/tokenizer_config.json (and whatever else the tokenizer writes)
  OUT/chat_template.jinja       finecap/export/chat_template.py: chat turns -> the trainer's prompt

Weight names, from the trainer's VisionLanguageModel (and the checkpoint files that hold them):
  vision.<k>      <- vision.<k>     (CKPT/vision.safetensors: <k>)        FineViT, unchanged
  projector.<k>   <- projector.<k>  (CKPT/heads.safetensors: projector.<k>) norm, fc1, fc2
  language_model.<k> <- lm.<k>      (CKPT/lm/model.safetensors: <k>)      the LM's own names, e.g.
                  language_model.model.layers.0.self_attn.q_proj.weight; with tied embeddings
                  (the tiny Llama) only language_model.model.embed_tokens.weight is stored and
                  language_model.lm_head.weight is tied to it on load.

The folder is written beside OUT and renamed into place, so OUT is a whole export or absent; an
OUT that exists and is not an earlier export is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from transformers import GenerationConfig

from finecap import __version__
from finecap.errors import UserError
from finecap.export.chat_template import CHAT_TEMPLATE
from finecap.export.hf_config import ARCHITECTURE, MODEL_TYPE, FineVitVLConfig
from finecap.export.hf_model import FineVitVLForConditionalGeneration
from finecap.export.processor import ImageSettings
from finecap.train.checkpoint import has_tower, read_state
from finecap.train.tasks import PROMPTS
from finecap.train.tokens import BOX_END, BOX_START, IMAGE_PAD, VISION_END, VISION_START, token_id
from finecap.train.towers import VisionLanguageModel, hidden_size
from finecap.train.vit import MERGE

PREFIXES = {"vision.": "vision.", "projector.": "projector.", "lm.": "language_model."}  # trainer -> export


class ExportError(UserError):
    """The checkpoint cannot be exported, or OUT cannot be written (one line)."""


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the FineViT-VL folder of a stage III checkpoint (folder, stage dir or run output) to OUT."""
    out = Path(out)
    _check_target(out)  # before loading: a refused OUT fails at once
    found, model, tokenizer, meta = load_stage3(checkpoint)
    source = {"checkpoint": str(found.resolve()), "step": read_state(found)["step"], "finecap_version": __version__}
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_folder(tmp, model, tokenizer, meta, source)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_stage3(checkpoint: str | Path) -> tuple[Path, VisionLanguageModel, object, dict]:
    """The trainer's model of a complete stage III checkpoint; anything else is an ExportError."""
    from finecap.train.evaluate_common import checkpoint_config
    from finecap.train.stage3 import build_vlm

    try:
        found, config, meta = checkpoint_config(checkpoint, "stage3")
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise ExportError(f"cannot export {checkpoint}: {exc}") from None
    if not has_tower(found, "lm"):  # build_vlm would start a fresh LM instead
        raise ExportError(f"cannot export {found}: it has no lm/ folder (not a complete stage III checkpoint)")
    try:
        model, tokenizer = build_vlm(config, None, found)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise ExportError(f"cannot export {found}: {str(exc).splitlines()[0]}") from None
    return found, model.eval(), tokenizer, meta


def model_config(model: VisionLanguageModel, tokenizer, meta: dict, source: dict) -> FineVitVLConfig:
    vit = model.vision.config
    text = {k: v for k, v in model.lm.config.to_dict().items() if k != "_name_or_path"}  # the checkpoint's lm/ path
    return FineVitVLConfig(
        architectures=[ARCHITECTURE], vision_config=vit.to_dict(), text_config=text,
        image_token_id=token_id(tokenizer, IMAGE_PAD), vision_start_token_id=token_id(tokenizer, VISION_START),
        vision_end_token_id=token_id(tokenizer, VISION_END), box_start_token_id=token_id(tokenizer, BOX_START),
        box_end_token_id=token_id(tokenizer, BOX_END), projector_input_dim=MERGE * MERGE * vit.width,
        projector_hidden_dim=hidden_size(model.lm), max_pixels=int(meta["resolution"]) ** 2,
        task_prompts=dict(PROMPTS), source=source, dtype=torch.float32,
    )


def exported_state_dict(model: VisionLanguageModel) -> dict[str, torch.Tensor]:
    """The trainer's state dict under the export's names (PREFIXES)."""
    out = {}
    for name, tensor in model.state_dict().items():
        prefix = next((p for p in PREFIXES if name.startswith(p)), None)
        if prefix is None:
            raise ExportError(f"no export name for the trainer's weight {name!r}")
        out[PREFIXES[prefix] + name.removeprefix(prefix)] = tensor
    return out


def write_folder(folder: Path, model: VisionLanguageModel, tokenizer, meta: dict, source: dict) -> None:
    config = model_config(model, tokenizer, meta, source)
    with torch.device("meta"):  # no second random initialisation: the trainer's tensors are assigned
        exported = FineVitVLForConditionalGeneration(config)
    exported.load_state_dict(exported_state_dict(model), strict=True, assign=True)
    exported.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=int(meta["text_length"]))
    exported.save_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE  # LLM.chat and `vllm serve` send the trainer's prompt
    tokenizer.save_pretrained(folder)
    ImageSettings(max_pixels=config.max_pixels).check().save(folder)


def _check_target(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder; refusing to overwrite it")
    if any(out.iterdir()) and _model_type(out / "config.json") != MODEL_TYPE:
        raise ExportError(f"{out} exists and is not a FineViT-VL export; refusing to overwrite it")


def _model_type(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
