"""Input readers. A source plans deterministic shards on the driver and reads one shard in a worker."""

from __future__ import annotations

from finecap.config import PipelineConfig
from finecap.sources.base import ShardSpec, Source
from finecap.sources.images import ImageFolderSource
from finecap.sources.img2dataset import Img2DatasetSource
from finecap.sources.urls import UrlListSource

_SOURCES: dict[str, type[Source]] = {
    "images": ImageFolderSource,
    "urls": UrlListSource,
    "img2dataset": Img2DatasetSource,
}


def make_source(config: PipelineConfig) -> Source:
    return _SOURCES[config.source.kind](config)


__all__ = ["ShardSpec", "Source", "make_source"]
