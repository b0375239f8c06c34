"""Versioned prompt files: `pipelines/prompts/NAME/VERSION.txt`, referred to as `NAME/VERSION`.

A prompt's id and the hash of its text go into provenance, so a changed prompt is visible in
every caption it writes and changes the config hash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

# Where each image of a multi-image request goes in its prompt (a template's `{image}` lines);
# only requests with a tuple of images are split at it (a single-image prompt is sent as it is,
# after its image).
IMAGE_MARKER = "{image}"
_ID = re.compile(r"^[a-z0-9_]+/v[0-9]+$")


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str

    @property
    def sha256(self) -> str:
        return "sha256:" + hashlib.sha256(self.text.encode()).hexdigest()[:16]


def load_prompt(prompts_dir: Path, prompt_id: str) -> Prompt:
    if not _ID.match(prompt_id):
        raise FileNotFoundError(f"prompt id {prompt_id!r} is not of the form name/vN")
    path = Path(prompts_dir) / f"{prompt_id}.txt"
    if not path.exists():
        raise FileNotFoundError(f"no prompt file {path}")
    return Prompt(id=prompt_id, text=path.read_text().strip())


VIEWS = ("composite", "marked", "crop", "whole", "shared")  # regions.view's values
_TAG = re.compile(r"^\[([a-z|]+)\]\s*")


def region_template(template: str, view: str, coordinates: bool) -> str:
    """A region prompt's lines for one view. A line may start with tags: a view tag such as
    `[composite]` or `[shared]`, or several views at once (`[composite|marked|crop]`), keeps the
    line (without its tags) only for those views; `[coordinates]` only when coordinates are on;
    both (`[crop][coordinates]`) only when both hold. Untagged lines are always kept."""
    kept = []
    for line in template.splitlines():
        views, needs_coordinates = set(), False
        while match := _TAG.match(line):
            names = set(match.group(1).split("|"))
            if names == {"coordinates"}:
                needs_coordinates = True
            elif names <= set(VIEWS):
                views |= names
            else:
                break  # not a tag: the text starts here
            line = line[match.end() :]
        if (views and view not in views) or (needs_coordinates and not coordinates):
            continue
        kept.append(line)
    return "\n".join(kept)
