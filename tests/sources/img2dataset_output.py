"""Write a real img2dataset output folder (parquet or webdataset) from URLs on the test server.

Uses img2dataset's own downloader, resizer (its `download()` defaults: 256 px, border) and
sample writers, shard by shard, the way its distributors call them; `download()` itself would
spawn worker processes that re-import img2dataset (~10 s each), too slow for a unit test.
"""

from __future__ import annotations

import os

import pyarrow as pa


def write_output(folder, urls: list[str], captions: list[str], output_format: str, per_shard: int = 10) -> None:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    from img2dataset.downloader import Downloader
    from img2dataset.resizer import Resizer
    from img2dataset.writer import ParquetSampleWriter, WebDatasetSampleWriter

    folder.mkdir(parents=True, exist_ok=True)
    writer = {"parquet": ParquetSampleWriter, "webdataset": WebDatasetSampleWriter}[output_format]
    downloader = Downloader(
        sample_writer_class=writer, resizer=Resizer(image_size=256, resize_mode="border", resize_only_if_bigger=False),
        thread_count=8, save_caption=True, extract_exif=True, output_folder=str(folder),
        column_list=["caption", "url"], timeout=2, number_sample_per_shard=per_shard, oom_shard_count=5,
        compute_hash="sha256", verify_hash_type=None, encode_format="jpg", retries=0, user_agent_token=None,
        disallowed_header_directives=None,
    )
    tmp = folder / "_tmp"
    tmp.mkdir(exist_ok=True)
    for shard_id, start in enumerate(range(0, len(urls), per_shard)):
        table = pa.table({"caption": captions[start : start + per_shard], "url": urls[start : start + per_shard]})
        path = tmp / f"{shard_id}.feather"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
            out.write_table(table)
        ok, _ = downloader((shard_id, str(path)))
        assert ok, f"img2dataset failed on shard {shard_id}"
    tmp.rmdir()
