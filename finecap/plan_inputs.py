"""What `finecap plan` learns beyond the rates file: how many regions per image need a VLM caption.

Why apart from plan.py: the regions stage's cost per image is no longer a property of the model
but of the build. It captions only the class-balanced selection of detector regions (`finecap
balance`), and an OCR region takes its OCR text as its caption, so it costs no VLM request. A
rates file cannot know a build's selection; `--selection OUT/balance` reads it from the summary
`finecap balance` writes, and `--regions-per-image X` says it directly.

The figure set is `selected_by_origin["detector"] / images` from summary.json: detector regions
kept by the selection per data row of the output (rows reaching the regions stage).
"""

from __future__ import annotations

import dataclasses
import json

from finecap.errors import UserError

REGIONS = "regions"  # the rates' stage that holds the VLM region captioner
SUMMARY = "summary.json"


class PlanInputError(UserError, ValueError):
    """A plan flag that cannot be applied; the message names the flag."""


@dataclasses.dataclass(frozen=True)
class RegionsPerImage:
    """Detector regions per image the regions stage captions, and where that figure came from."""

    value: float
    source: str


def read_selection(uri: str) -> RegionsPerImage:
    """Regions per image from a balanced selection: OUT/balance (or OUT, whose balance/ is used)."""
    from finecap import storage  # fsspec: only when the flag is given

    path = storage.join(uri, SUMMARY)
    if not storage.exists(path):
        nested = storage.join(uri, "balance", SUMMARY)
        if not storage.exists(nested):
            raise PlanInputError(f"--selection: no {SUMMARY} under {uri} (run `finecap balance OUT` first "
                                 "and pass OUT/balance)")
        path = nested
    try:
        summary = json.loads(storage.read_bytes(path))
    except ValueError:
        raise PlanInputError(f"--selection: {path} is not valid JSON") from None
    return regions_from_summary(summary, path)


def regions_from_summary(summary: dict, path: str) -> RegionsPerImage:
    missing = [k for k in ("images", "selected_by_origin", "origins") if k not in summary]
    if missing:
        raise PlanInputError(f"--selection: {path} has no {', '.join(missing)} (written by an older "
                             "`finecap balance`: rerun it)")
    if "detector" not in summary["origins"]:
        raise PlanInputError(f"--selection: {path} did not balance detector regions (origins: "
                             f"{', '.join(summary['origins'])}): rerun `finecap balance` with --origin detector")
    images = int(summary["images"])
    if images < 1:
        raise PlanInputError(f"--selection: {path} counts {images} images")
    detector = int(summary["selected_by_origin"].get("detector", 0))
    return RegionsPerImage(detector / images, f"{detector:,} selected detector regions / {images:,} images "
                                              f"in {path}")


def regions_override(selection: str | None, regions_per_image: float | None) -> RegionsPerImage | None:
    """The figure the flags give (None without either); both at once is refused."""
    if selection is not None and regions_per_image is not None:
        raise PlanInputError("--selection and --regions-per-image: give one, not both")
    if regions_per_image is not None:
        if not regions_per_image >= 0:
            raise PlanInputError(f"--regions-per-image: must be >= 0 (got {regions_per_image:g})")
        return RegionsPerImage(regions_per_image, "--regions-per-image")
    return read_selection(selection) if selection is not None else None


def apply_regions(rates, override: RegionsPerImage | None, flag: str):
    """A copy of `rates` whose regions stage captions `override.value` regions per image."""
    if override is None:
        return rates
    if REGIONS not in rates.stages:
        raise PlanInputError(f"{flag}: the rates have no {REGIONS!r} stage to apply it to")
    stage = rates.stages[REGIONS]
    note = f"{stage.note}; " if stage.note else ""
    changed = dataclasses.replace(stage, items_per_image=override.value,
                                  note=f"{note}items_per_image {override.value:.3g} from {override.source}")
    return dataclasses.replace(rates, stages={**rates.stages, REGIONS: changed})
