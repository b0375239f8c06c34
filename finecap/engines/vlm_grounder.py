"""A VLM as the detector: one request per (image, phrase), the answer a box in text.

Why: FineViT-VL's stage III trained a caption -> box task (`Find the region: CAPTION` ->
`<|box_start|>(x1,y1),(x2,y2)<|box_end|>`), so the same exported model that captions a build can
also ground its phrases, beside Grounding DINO (`detect.engine: vlm`). The requests go through the
captioners' engines (vLLM in-process, or an OpenAI-compatible server), all of a batch in one call so
the engine batches them continuously.

A box's score is the geometric mean of its answer tokens' probabilities, exp(logprob / tokens):
how sure the model was of the coordinates it wrote. It is held against `detect.box_threshold`;
answers without a well-formed box, or with a box of no area, give no candidate. A request that
failed for good (the endpoint is down) fails its image: the stage rejects the row, naming the error,
rather than writing it without boxes as if nothing were there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from finecap.box_format import parse_box
from finecap.config import CaptionerConfig
from finecap.engines.base import Generation, SamplingSpec, VisionLanguageEngine
from finecap.engines.detector_grounding import Candidate


@dataclass(frozen=True)
class ImageGrounding:
    """One image's candidates (`Candidate.phrase` indexes its phrases), or the error that failed it."""

    candidates: list[Candidate]
    error: str | None = None


def box_score(generation: Generation) -> float:
    """exp(mean answer-token log-probability); 0.0 when the engine sent no log-probability."""
    if generation.logprob is None or generation.num_tokens <= 0:
        return 0.0
    return math.exp(generation.logprob / generation.num_tokens)


def candidate_of(generation: Generation, phrase: int) -> Candidate | None:
    """The answer's box as a candidate, or None when it holds no box with an area."""
    box = parse_box(generation.text)
    if box is None or box[2] <= box[0] or box[3] <= box[1]:
        return None
    return Candidate(tuple(box), box_score(generation), phrase)  # type: ignore[arg-type]


class VlmGrounder:
    """caption -> box with a VLM engine; `prompt` is the grounding template with `{phrase}`."""

    def __init__(self, grounder: CaptionerConfig, prompt: str, engine: VisionLanguageEngine | None = None):
        if engine is None:
            from finecap.engines.factory import make_vlm_engine

            engine = make_vlm_engine(grounder)
        self.engine, self.prompt = engine, prompt
        self.sampling = SamplingSpec(max_tokens=grounder.max_tokens, temperature=grounder.temperature,
                                     top_p=grounder.top_p, seed=grounder.engine_options.seed, logprobs=True)

    def ground(self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]],
               box_threshold: float) -> list[ImageGrounding]:
        requests = [(i, j) for i, image_phrases in enumerate(phrases) for j in range(len(image_phrases))]
        prompts = [self.prompt.replace("{phrase}", phrases[i][j]) for i, j in requests]
        generations = self.engine.generate([images[i] for i, _ in requests], prompts, self.sampling) if requests else []
        found: list[list[Candidate]] = [[] for _ in images]
        errors: list[str | None] = [None] * len(images)
        for (i, j), generation in zip(requests, generations, strict=True):
            if generation.error:
                errors[i] = errors[i] or generation.error
                continue
            candidate = candidate_of(generation, j)
            if candidate is not None and candidate.score >= box_threshold:
                found[i].append(candidate)
        return [ImageGrounding(c, e) for c, e in zip(found, errors, strict=True)]
