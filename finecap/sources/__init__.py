"""Input readers. A source plans deterministic shards on the driver and reads one shard in a worker."""

from __future__ import annotations

from finecap.config import PipelineConfig
from finecap.sources.base import ShardSpec, Source
from finecap.sources.detect import Detected, detect_kind, peek_kind, resolve_kind
from finecap.sources.images import ImageFolderSource
from finecap.sources.img2dataset import Img2DatasetSource
from finecap.sources.urls import UrlListSource

_SOURCES: dict[str, type[Source]] = {
    "images": ImageFolderSource,
    "urls": UrlListSource,
    "img2dataset": Img2DatasetSource,
}


def resolve_source(config: PipelineConfig) -> PipelineConfig:
    """Check `source.kind` against the input and write the concrete kind into `config.source.kind`.

    In place, on purpose: the caller's config (the CLI hands it on to dedup), its hash and stage
    fingerprints, and the copies Ray ships to workers then all name the kind that was built, and
    `kind: auto` hashes the same as the kind it resolved to. The driver calls it before any work
    (runtime/runner.py run_build); a second call re-checks, at the cost of another listing.
    """
    config.source.kind = resolve_kind(config.source)
    return config


def make_source(config: PipelineConfig) -> Source:
    """The reader for `source.kind`. 'auto' is detected here (a config resolve_source has not seen);
    an explicit kind is taken as it is: workers build a source per batch, and must not list the
    input each time (resolve_source checked it on the driver)."""
    kind = resolve_kind(config.source) if config.source.kind == "auto" else config.source.kind
    if kind == "finecap":
        raise ValueError(
            f"source.uri {config.source.uri} is a FineCap output: a build from a FineCap output reads "
            f"it through the rebuild reader, not through make_source"
        )
    return _SOURCES[kind](config)


__all__ = ["Detected", "ShardSpec", "Source", "detect_kind", "make_source", "peek_kind", "resolve_kind",
           "resolve_source"]
