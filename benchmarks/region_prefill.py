"""Region captions: prompt tokens vLLM prefills per region, composite view vs shared view.

Why: in the composite view every region is its own picture (the whole image outlined, beside the
crop), so vLLM encodes and prefills the whole image again for each region. The shared view sends
the same words and the same whole image first for every region of an image, then the crop and the
box (stages/region_views.py), so vLLM's prefix cache serves that start from the second region on.
One engine (the same settings for both views, two images allowed per prompt) captions the same
regions of the same synthetic scenes in both views, with the stage's own view and prompt code
and region_context/v2; views take turns, and the prefix cache is emptied before each turn, so no
turn reuses another's prefixes. Per region: prompt tokens, prompt tokens served from the prefix
cache (vLLM's RequestOutput.num_cached_tokens), prompt tokens prefilled (the difference), and
region captions per second (views built and captioned, wall clock).
The regions are each scene's shapes and words (all sent to the VLM, as with
`regions.caption_ocr_regions: true`); `--max-objects` sets how many shapes a scene may have. The
tiny VLM shrinks every picture to one 112 px tile (16 image tokens), so its prompts are mostly
words: a VLM whose image tokens grow with the picture (Qwen3-VL) pays more for the composite's
wide picture and the whole image, which the shared view caches, and less for the crop.

    python benchmarks/region_prefill.py [--scenes 12] [--max-objects 6] [--block-size N] [--processor-cache-gib G]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VIEWS = ("composite", "shared")
PROMPT = "region_context/v2"
SIZES = [(640, 480), (480, 640), (768, 512), (768, 432)]


def corpus(n: int, seed: int, max_objects: int) -> list[tuple]:
    """`n` scenes, each with its regions as the regions stage gets them (objects and words)."""
    import numpy as np

    from finecap.samples.scenes import generate_scene

    scenes = []
    for i in range(n):
        scene = generate_scene(np.random.default_rng([seed, i]), *SIZES[i % len(SIZES)], max_objects=max_objects,
                               max_words=3)
        regions = [{"bbox": list(o.bbox), "origin": "detector", "phrase": f"{o.size} {o.colour} {o.shape}"}
                   for o in scene.objects]
        regions += [{"bbox": list(w.bbox), "origin": "ocr", "ocr_text": w.text} for w in scene.words]
        scenes.append((scene.image, regions))
    return scenes


def run_view(engine, scenes: list[tuple], view: str, prompt: str, args) -> dict:
    """Caption every region of `scenes` in `view`, in calls of requests_per_call (regions of one
    image adjacent, as the stage sends them); token counts per request and the wall time."""
    from finecap.config import RegionsConfig
    from finecap.engines.base import SamplingSpec
    from finecap.stages.regions import region_views, render_prompt, subject

    cfg = dataclasses.replace(RegionsConfig(), view=view, view_max_side=args.view_max_side)
    jobs = [(row, r) for row, (_, regions) in enumerate(scenes) for r in regions]
    images = {row: image for row, (image, _) in enumerate(scenes)}
    spec = SamplingSpec(max_tokens=args.max_tokens, temperature=0.0, seed=0)
    generations = []
    started = time.perf_counter()
    for start in range(0, len(jobs), cfg.requests_per_call):
        chunk = jobs[start : start + cfg.requests_per_call]
        views = region_views(images, [(row, r["bbox"]) for row, r in chunk], cfg)
        prompts = [render_prompt(prompt, view, cfg.coordinates, subject(r), r["bbox"]) for _, r in chunk]
        generations += engine.generate(views, prompts, spec)
    seconds = time.perf_counter() - started
    return {"requests": len(generations), "seconds": seconds,
            "prompt_tokens": sum(g.prompt_tokens for g in generations),
            "cached_tokens": sum(g.cached_prompt_tokens or 0 for g in generations),
            "captioned": sum(1 for g in generations if g.text.strip())}


def summary(turns: list[dict]) -> dict:
    n = sum(t["requests"] for t in turns)
    prompt, cached = sum(t["prompt_tokens"] for t in turns), sum(t["cached_tokens"] for t in turns)
    seconds = sum(t["seconds"] for t in turns)
    return {"regions": n, "prompt_tokens_per_region": round(prompt / n, 1),
            "cached_tokens_per_region": round(cached / n, 1),
            "prefilled_tokens_per_region": round((prompt - cached) / n, 1),
            "seconds": round(seconds, 2), "region_captions_per_second": round(n / seconds, 2),
            "non_empty_captions": sum(t["captioned"] for t in turns)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--turns", type=int, default=2, help="runs per view, the views taking turns")
    parser.add_argument("--model", default="tiny:vlm-a")
    parser.add_argument("--max-objects", type=int, default=6, help="shapes per scene, at most (local.yaml's "
                        "detect.max_regions is 6)")
    parser.add_argument("--view-max-side", type=int, default=448, help="regions.view_max_side")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=None, help="vLLM KV block size (default: vLLM's)")
    parser.add_argument("--processor-cache-gib", type=float, default=None,
                        help="vLLM's mm_processor_cache_gb (default: the engine's for two images a prompt)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--tag", default="", help="suffix of the recorded name (a variant's own row)")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    from benchmarks.record import record
    from finecap.config import EngineConfig
    from finecap.engines.vllm_offline import VllmEngine
    from finecap.prompts import load_prompt

    scenes = corpus(args.scenes, args.seed, args.max_objects)
    prompt = load_prompt(REPO / "pipelines" / "prompts", PROMPT).text
    options = EngineConfig(dtype="float32", max_model_len=2048, max_num_seqs=16, enforce_eager=True,
                           block_size=args.block_size)
    engine = VllmEngine(args.model, options, images_per_prompt=2, processor_cache_gib=args.processor_cache_gib)
    cache = engine._llm.llm_engine.vllm_config.cache_config
    run_view(engine, corpus(2, args.seed + 1, args.max_objects), "shared", prompt, args)  # warm-up
    turns = {view: [] for view in VIEWS}
    for n in range(args.turns):
        for view in VIEWS if n % 2 == 0 else VIEWS[::-1]:  # each view first in turn
            engine._llm.reset_prefix_cache()  # no turn reuses an earlier turn's prefixes
            turns[view].append(run_view(engine, scenes, view, prompt, args))
    rows = {view: summary(turns[view]) for view in VIEWS}
    c, s = rows["composite"], rows["shared"]
    ratios = {"prefilled_tokens_composite_over_shared": round(c["prefilled_tokens_per_region"]
                                                               / s["prefilled_tokens_per_region"], 2),
              "prompt_tokens_composite_over_shared": round(c["prompt_tokens_per_region"]
                                                           / s["prompt_tokens_per_region"], 2),
              "captions_per_second_shared_over_composite": round(s["region_captions_per_second"]
                                                                 / c["region_captions_per_second"], 2)}
    figures = {"model": args.model, "prompt": PROMPT, "scenes": args.scenes, "max_objects": args.max_objects,
               "regions_per_image": round(c["regions"] / args.turns / args.scenes, 2), "turns": args.turns,
               "view_max_side": args.view_max_side, "max_tokens": args.max_tokens,
               "prefix_caching": cache.enable_prefix_caching, "block_size": cache.block_size,
               "processor_cache_gib": engine.processor_cache_gib,
               "load_average_1m": round(os.getloadavg()[0], 1), "views": rows, "ratios": ratios}
    print(json.dumps(figures, indent=2))
    headline = (f"{args.model}, KV block {cache.block_size}, "
                f"{figures['regions_per_image']} regions/image: prefilled tokens per region composite "
                f"{c['prefilled_tokens_per_region']} vs shared {s['prefilled_tokens_per_region']} "
                f"({ratios['prefilled_tokens_composite_over_shared']}x fewer; prompt tokens "
                f"{c['prompt_tokens_per_region']} vs {s['prompt_tokens_per_region']}); region captions/s "
                f"{c['region_captions_per_second']} vs {s['region_captions_per_second']} "
                f"({ratios['captions_per_second_shared_over_composite']}x)")
    print(headline)
    if not args.no_record:
        record(f"region_prefill{args.tag}", figures, headline, ">= 3x fewer prefilled tokens per region (shared)")


if __name__ == "__main__":
    main()
