"""Finished rows without a model: source -> prepare -> a caption written by hand."""

from __future__ import annotations

import pyarrow as pa

from finecap.sources import make_source
from finecap.stages.caption import CAPTION_TYPE
from finecap.stages.prepare import PrepareStage
from finecap.stages.write import PieceWriter


def finished_shard(config, index: int = 0) -> tuple[object, pa.Table]:
    source = make_source(config)
    spec = source.plan()[index]
    rows = PrepareStage(config)(source.read(spec))
    captions = [
        [{"text": "a square", "model": "m", "model_revision": "sha256:1", "prompt_id": "global_detailed/v1", "num_tokens": 2}]
    ] * rows.num_rows
    return spec, rows.append_column("captions", pa.array(captions, pa.list_(CAPTION_TYPE)))


def stage_pieces(config, rows: pa.Table, chash: str = "sha256:test", splits: int = 2) -> list[dict]:
    """Stage `rows` as `splits` pieces, as several batches would."""
    writer = PieceWriter(config, chash)
    step = -(-rows.num_rows // splits)
    pieces = []
    for start in range(0, rows.num_rows, step):
        pieces += writer(rows.slice(start, step)).to_pylist()
    return pieces
