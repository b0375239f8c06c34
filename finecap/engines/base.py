"""The interface every vision-language engine offers the caption stages.

A request is one prompt and one image, or one prompt and a tuple of images. For a tuple the
prompt holds one `IMAGE_MARKER` per image, where that image goes: the text before the first
marker, image 1, the text up to the next marker, image 2, and so on. So the part several requests
share (words common to all, then the whole image of a region view) can lead every one of them,
and an engine with prefix caching computes it once (stages/region_views.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from PIL import Image

from finecap.prompts import IMAGE_MARKER

RequestImage = Image.Image | tuple[Image.Image, ...]


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
    # The prompt's tokens (images' included) and how many of them the engine's prefix cache
    # served, when the engine reports them (None otherwise): what a shared prefix saved.
    prompt_tokens: int | None = None
    cached_prompt_tokens: int | None = None


def interleave(image: RequestImage, prompt: str) -> list[Image.Image | str]:
    """A request's content in the order the model gets it: images and (non-empty) text pieces.
    One image: the image, then the prompt, as every engine sent it before multi-image requests."""
    if isinstance(image, Image.Image):
        return [image, prompt]
    pieces = [text.strip() for text in prompt.split(IMAGE_MARKER)]
    if len(pieces) != len(image) + 1:
        raise ValueError(f"a request with {len(image)} images needs {len(image)} {IMAGE_MARKER} "
                         f"marker(s) in its prompt, found {len(pieces) - 1}")
    content: list[Image.Image | str] = [pieces[0]] if pieces[0] else []
    for picture, text in zip(image, pieces[1:], strict=True):
        content.append(picture)
        if text:
            content.append(text)
    return content


def images_in(image: RequestImage) -> int:
    return 1 if isinstance(image, Image.Image) else len(image)


class VisionLanguageEngine(ABC):
    """Captions images: one prompt and one image (or a tuple of images, see `interleave`) per
    request, all requests in one call so the engine can batch them continuously."""

    model: str
    revision: str

    @abstractmethod
    def generate(
        self, images: list[RequestImage], prompts: list[str], sampling: SamplingSpec
    ) -> list[Generation]:
        """One generation per (image, prompt) pair, in order."""
