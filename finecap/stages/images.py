"""Decode the images of some rows of a batch for a model stage; a row whose bytes are missing or
unreadable becomes a reject instead of an exception for the whole batch.

Why a helper: caption, detect, ocr and regions all decode a column for a subset of rows, and each
did it with `column.take(rows)`, which raises `ArrowNotImplementedError (binary, null)` when
`rows` is an empty Python list (pyarrow infers a null-typed index array). Here the rows are
indexed one by one, so an empty selection is simply empty, and the engine is not called.
"""

from __future__ import annotations

import pyarrow as pa
from PIL import Image

from finecap.image_ops import ImageRejected, decode_rgb
from finecap.stages.base import RejectMarks


def decode_rows(
    batch: pa.Table, column: str, rows: list[int], max_pixels: int, marks: RejectMarks
) -> tuple[list[int], list[Image.Image]]:
    """RGB images of `rows` from `column`, and the rows they belong to (those that decoded).

    A row without the column, with null or empty bytes, or with bytes that do not decode is
    rejected in `marks` (reason `empty` or the decoder's reason, e.g. `decode_error`).
    """
    if not rows:
        return [], []
    values = batch.column(column) if column in batch.column_names else None
    kept, images = [], []
    for row in rows:
        data = values[row].as_py() if values is not None else None
        try:
            if not data:
                raise ImageRejected("empty", f"no {column} bytes")
            images.append(decode_rgb(data, max_pixels))
        except ImageRejected as exc:
            marks.reject(row, exc.reason, exc.detail)
            continue
        kept.append(row)
    return kept, images
