"""The interface every vision-language engine offers the caption stages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class SamplingSpec:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: bool = False  # also return the answer's log-probability (a grounder's box score)


@dataclass(frozen=True)
class Generation:
    text: str
    num_tokens: int
    finish_reason: str | None  # "stop", "length", ... as the engine reports it
    error: str | None = None  # set when this one request failed for good (e.g. endpoint down)
    logprob: float | None = None  # sum of the answer tokens' log-probabilities, when asked for


class VisionLanguageEngine(ABC):
    """Captions images: one prompt and one image per request, all requests in one call so the
    engine can batch them continuously."""

    model: str
    revision: str

    @abstractmethod
    def generate(
        self, images: list[Image.Image], prompts: list[str], sampling: SamplingSpec
    ) -> list[Generation]:
        """One generation per (image, prompt) pair, in order."""
