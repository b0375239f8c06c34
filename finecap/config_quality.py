"""Settings of the quality stage: which signals flag (or reject) a row.

The signals themselves (finecap/quality/signals.py, docs/quality.md) need no ground truth: they
compare what one model said with what another found in the same image. A threshold set to null
is off. By default rows are only flagged (`signals.flags`), never dropped: a flag says "look
here", and a team decides from the report which flags should become rejects (`action: reject`).

Measured with the defaults: the synthetic scenes' true captions and regions break none
(tests/stages/test_quality.py), while the bundled sample built with the tiny random models
(`make build-dataset`, 29 rows) has 28 rows flagged: region_disagreement 27, repetitive 8,
short_caption 6. low_grounding stays quiet there because the tiny random detector boxes every
phrase (its COCO AP against the scenes' truth is 0.0): grounding is only as good as the detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from finecap.config_resources import Resources


@dataclass
class QualityConfig:
    enabled: bool = True
    action: Literal["flag", "reject"] = "flag"  # what a broken threshold does to the row
    # A phrase counts as grounded when a detector region for it scores at least this (the
    # detector's own box_threshold already dropped weaker boxes: 0 keeps every kept box).
    grounding_min_score: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})
    min_grounding_rate: float | None = field(default=0.25, metadata={"min": 0.0, "max": 1.0})
    max_repetition: float | None = field(default=0.3, metadata={"min": 0.0, "max": 1.0})
    min_caption_words: int | None = field(default=3, metadata={"min": 0})
    max_caption_words: int | None = field(default=None, metadata={"min": 1})
    min_ocr_quote_support: float | None = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    max_ocr_ignored: float | None = field(default=None, metadata={"min": 0.0, "max": 1.0})
    min_region_agreement: float | None = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    # Pure Python over a batch's text: a sliver of a CPU. Batches no wider than the regions
    # stage's (16) before it: Ray Data holds finished rows until a batch fills, so with 64 a small
    # build's shards all committed in one burst at the end (the soak's killed rebuild saw 12 of 12).
    resources: Resources = field(default_factory=lambda: Resources(num_cpus=0.25, batch_size=16))
