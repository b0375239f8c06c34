"""FineViT-VL through vLLM against the trainer's own generation loop, on the same images, one run.

Both caption the same synthetic scenes with the stage III prompt ("Describe this image."), greedy,
the same max tokens, from the same weights: vLLM loads the exported folder (finecap export vllm;
the finecap plugin registers the architecture) and batches all requests continuously; the trainer's
loop (`finecap.train.eval_grounding.Grounder`, what `finecap eval grounding` uses) encodes each image
and runs transformers' `generate` on it, one image at a time as it does there. Prints images/s and
output tokens/s of both and the ratio, and checks that both wrote the same answers (they compute
the same model: tests/export).

The model: `make data-engine`'s (build/data-engine/model, exported from build/data-engine/work/run/stage3)
by default, or any other export and its checkpoint (`--model FOLDER --checkpoint CKPT`).

    python benchmarks/finevit_vl_engine.py [--images 64] [--max-tokens 64]      # full
    python benchmarks/finevit_vl_engine.py --images 8 --max-tokens 16           # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def scenes(n: int, seed: int) -> list:
    import numpy as np

    from finecap.samples.scenes import generate_scene

    rng = np.random.default_rng(seed)
    return [generate_scene(rng, 320, 240).image for _ in range(n)]


def through_vllm(model: Path, images: list, prompt: str, max_tokens: int) -> tuple[float, list[list[int]]]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(model), dtype="float32", max_model_len=512, max_num_seqs=64, enforce_eager=True, seed=0,
              limit_mm_per_prompt={"image": 1}, mm_processor_cache_gb=0)
    conversations = [[{"role": "user", "content": [{"type": "image_pil", "image_pil": im},
                                                   {"type": "text", "text": prompt}]}] for im in images]
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    llm.chat(conversations[:1], params, use_tqdm=False)  # warm-up: the first batch compiles nothing on CPU, but allocates
    started = time.perf_counter()
    outputs = llm.chat(conversations, params, use_tqdm=False)
    return time.perf_counter() - started, [list(o.outputs[0].token_ids) for o in outputs]


def through_trainer(checkpoint: Path, images: list, prompt: str, max_tokens: int) -> tuple[float, list[list[int]]]:
    import torch

    from finecap.train.eval_grounding import Grounder, load_vlm
    from finecap.train.patches import pack, patchify

    model, tokenizer, meta = load_vlm(checkpoint)
    grounder = Grounder(model, tokenizer, int(meta["resolution"]), max_tokens)
    eos = tokenizer.eos_token_id
    answers = []
    started = time.perf_counter()
    for image in images:
        with torch.no_grad():
            visual = model.image_tokens(pack([patchify(image, grounder.resolution**2)]))
        ids = grounder.tok(grounder.generate(visual, [prompt])[0], add_special_tokens=False)["input_ids"]
        answers.append(ids[: ids.index(eos) + 1] if eos in ids else ids)
    return time.perf_counter() - started, answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", type=Path, default=REPO / "build/data-engine/model", help="exported folder")
    parser.add_argument("--checkpoint", type=Path, default=REPO / "build/data-engine/work/run/stage3",
                        help="the stage III checkpoint (or stage dir) it was exported from")
    args = parser.parse_args()
    import torch

    from benchmarks.record import record
    from finecap.train.tasks import PROMPTS

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model, checkpoint = args.model, args.checkpoint
    if not (model / "config.json").exists() or not checkpoint.exists():
        print(f"error: no exported model at {model} or no checkpoint at {checkpoint} (run `make data-engine`)",
              file=sys.stderr)
        return 2
    images = scenes(args.images, seed=11)
    prompt = PROMPTS["global_caption"]
    trainer_s, trainer_ids = through_trainer(checkpoint, images, prompt, args.max_tokens)
    vllm_s, vllm_ids = through_vllm(model, images, prompt, args.max_tokens)
    same = sum(a == b[: len(a)] or b == a[: len(b)] for a, b in zip(vllm_ids, trainer_ids, strict=True))
    figures = {"images": len(images), "max_tokens": args.max_tokens, "same_answers": same}
    for name, seconds, ids in (("vllm", vllm_s, vllm_ids), ("trainer", trainer_s, trainer_ids)):
        tokens = sum(len(i) for i in ids)
        figures[name] = {"seconds": round(seconds, 3), "images_per_s": round(len(images) / seconds, 2),
                         "output_tokens_per_s": round(tokens / seconds, 1), "output_tokens": tokens}
        print(f"{name:8s} {figures[name]['images_per_s']:7.2f} images/s {figures[name]['output_tokens_per_s']:8.1f} "
              f"output tokens/s ({tokens} tokens in {seconds:.1f} s)")
    ratio = figures["vllm"]["images_per_s"] / figures["trainer"]["images_per_s"]
    figures["ratio_images_per_s"] = round(ratio, 2)
    print(f"vLLM / trainer: {ratio:.2f}x images/s; {same}/{len(images)} answers the same")
    record("finevit_vl_engine", figures, f"vLLM {ratio:.2f}x the trainer's loop ({figures['vllm']['images_per_s']} vs "
           f"{figures['trainer']['images_per_s']} images/s), {same}/{len(images)} answers equal",
           "measured (no goal): engine throughput of the exported model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
