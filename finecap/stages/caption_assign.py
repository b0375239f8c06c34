"""Which captioners caption which image: deterministic, stable, weighted.

`all`: every captioner captions every image. `weighted`: each image gets `k` distinct captioners
drawn by weighted rendezvous hashing of its key, so the same key always gets the same
captioners (reruns and retries agree), shares follow the weights, and adding a captioner moves
only the images it wins.
"""

from __future__ import annotations

import hashlib
import math

from finecap.config import CaptionerConfig


def _uniform(key: str, name: str) -> float:
    digest = hashlib.blake2b(f"{name}\x00{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def assigned_captioners(key: str, captioners: list[CaptionerConfig], rule: str, k: int) -> list[str]:
    if rule == "all":
        return [c.name for c in captioners]
    scored = sorted(
        (-math.log(_uniform(key, c.name)) / c.weight, c.name) for c in captioners if c.weight > 0
    )
    return [name for _, name in scored[:k]]
