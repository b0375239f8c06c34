"""Settings of the class balance that runs before the region captions (issue "Cost at scale").

The paper balances categories before it captions regions: frequent categories are capped (at
100k instances), rare ones kept whole. Captioning every region and balancing afterwards spends
most of the region-caption compute on regions the balanced set drops, so with `enabled` a build
runs in two passes (finecap/runtime/balanced_build.py): every stage up to OCR, then the selection
(finecap/balance.py, the same one `finecap balance` writes), then the region captions of the
selected regions only. The selection depends on the counts of the whole output, so no single
pass on many workers could make it; two passes give the same selection on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class BalanceConfig:
    enabled: bool = False
    # A category is capped (to `cap` regions) when it has more than `cap` and at least
    # `keep_below`; any other category is kept whole. With the defaults no category keeps more
    # than `cap`; a keep_below above the cap spares the categories between the two.
    cap: int = field(default=100_000, metadata={"min": 1})
    keep_below: int = field(default=1_000, metadata={"min": 0})
    seed: int = 0  # which instances of a capped category survive (a hash of seed, key, region)
    # OCR regions take their OCR text as caption (no VLM request), so capping them saves nothing
    # and would drop text lines: all of them sit in one category `text`, which a cap of 100k
    # would cut to 100k for the whole dataset. `cap` balances them like any category.
    ocr: Literal["exempt", "cap"] = "exempt"
    # A selection written by `finecap balance` (its folder) whose regions the regions stage
    # captions; set by the balanced build itself. Set it by hand to caption a selection made
    # with other arguments; its digest is part of the regions stage's fingerprint.
    selection: str | None = None

    def origins(self) -> list[str]:
        """The region origins the selection balances; other origins are all kept."""
        return ["detector", "ocr"] if self.ocr == "cap" else ["detector"]
