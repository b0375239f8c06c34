"""Versioned prompt files: `pipelines/prompts/NAME/VERSION.txt`, referred to as `NAME/VERSION`.

A prompt's id and the hash of its text go into provenance, so a changed prompt is visible in
every caption it writes and changes the config hash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

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


_VIEW_TAG = re.compile(r"^\[(composite|marked|crop|whole|coordinates)\]\s*")


def region_template(template: str, view: str, coordinates: bool) -> str:
    """A region prompt's lines for one view: a line tagged `[composite]`, `[marked]`, `[crop]` or
    `[whole]` is kept (without its tag) only for that view, one tagged `[coordinates]` only when
    coordinates are on; untagged lines always."""
    kept = []
    for line in template.splitlines():
        match = _VIEW_TAG.match(line)
        if match:
            tag = match.group(1)
            if (tag == "coordinates" and not coordinates) or (tag != "coordinates" and tag != view):
                continue
            line = line[match.end() :]
        kept.append(line)
    return "\n".join(kept)
