"""The duplicate-caption rate across a whole output: a dataset-level pass, like dedup.

A captioner stuck in a template ("A photo of a room.") writes the same caption for many images;
per row nothing looks wrong, so this is measured over every committed shard. Texts are compared
after `normalise_caption` (case, runs of whitespace and punctuation at the ends do not count), as
64-bit hashes (quality/tally.py): memory grows with the distinct captions, not their text. Only the
few most repeated texts are read back, from the shards where each first occurred.

Two rates: `rate` counts a caption as duplicated when its text occurs more than once anywhere in
the output; each `by_captioner` entry counts within that captioner's own captions (model, revision
and prompt), which is how often it repeats itself, whatever the other captioners wrote.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from finecap.dataset import CommittedShard, committed_shards, iter_committed, read_data
from finecap.quality.tally import HashTally, text_hash

TOP = 10  # most repeated texts listed
CAPTIONER = ("model", "model_revision", "prompt_id")  # what makes a caption's provenance


def normalise_caption(text: str | None) -> str:
    """Case-folded, whitespace runs as one space, punctuation and spaces stripped from both ends."""
    text = " ".join((text or "").casefold().split())
    start, end = 0, len(text)
    while start < end and _edge(text[start]):
        start += 1
    while end > start and _edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _edge(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def caption_fields(data: pa.Table, names: tuple[str, ...]) -> dict[str, list]:
    """Fields of every caption of a shard's `captions` column, flattened (rows in order); a field
    the shard's schema version lacks (`signals` before v3) is None for every caption."""
    flat = pc.list_flatten(data.column("captions"))
    return {name: pc.struct_field(flat, name).to_pylist() if flat.type.get_field_index(name) >= 0
            else [None] * len(flat) for name in names}


def _hashes(texts: list[str | None]) -> np.ndarray:
    return np.fromiter((text_hash(normalise_caption(t)) for t in texts), np.uint64, len(texts))


def duplicate_captions(output: str, shards: list[CommittedShard] | None = None, top: int = TOP) -> dict:
    """Duplicated global captions of `output` (see the module doc); reads only `captions`."""
    shards = committed_shards(output) if shards is None else shards
    overall = HashTally()
    per_captioner: dict[tuple, HashTally] = defaultdict(HashTally)
    for index, (_, data) in enumerate(iter_committed(output, ["captions"], shards=shards)):
        fields = caption_fields(data, ("text", *CAPTIONER))
        hashes = _hashes(fields["text"])
        overall.add(hashes, index)
        positions: dict[tuple, list[int]] = defaultdict(list)
        for i, captioner in enumerate(zip(*(fields[name] for name in CAPTIONER), strict=True)):
            positions[captioner].append(i)
        for captioner, rows in positions.items():
            per_captioner[captioner].add(hashes[rows], index)
    values, counts, origins = overall.result()
    return {
        **_rate(counts),
        "distinct": int(values.size),
        "by_captioner": [{**dict(zip(CAPTIONER, captioner, strict=True)), **_rate(tally.result()[1])}
                         for captioner, tally in sorted(per_captioner.items())],
        "top": _top_texts(shards, values, counts, origins, top),
    }


def _rate(counts: np.ndarray) -> dict:
    captions = int(counts.sum())
    duplicated = int(counts[counts > 1].sum())
    return {"captions": captions, "duplicated": duplicated, "rate": duplicated / captions if captions else None}


def _top_texts(shards: list[CommittedShard], values: np.ndarray, counts: np.ndarray, origins: np.ndarray,
               top: int) -> list[dict]:
    """The `top` most repeated texts, read back from the shard where each first occurred. Equal
    counts at the cut are chosen by hash (stable across runs), then listed by text."""
    repeated = np.flatnonzero(counts > 1)
    chosen = repeated[np.lexsort((values[repeated], -counts[repeated]))][:top]
    wanted = {int(values[i]): int(counts[i]) for i in chosen}
    found: dict[int, str] = {}
    for index in sorted({int(origins[i]) for i in chosen}):
        for text in caption_fields(read_data(shards[index], ["captions"]), ("text",))["text"]:
            normal = normalise_caption(text)
            if (value := text_hash(normal)) in wanted:
                found.setdefault(value, normal)
    entries = [{"text": found[h], "count": n} for h, n in wanted.items()]
    return sorted(entries, key=lambda e: (-e["count"], e["text"]))
