"""The Parquet sink (the path `finecap build` takes) vs a bare `pyarrow.parquet.write_table`.

Why: the sink commits each shard exactly once (files whole, then the manifest, through the shard
writer) while batches arrive in any order; this measures what that costs next to the cheapest
possible write of the same rows. Goal: sink >= 0.8x the raw throughput.

Rows: the sample source (scenes and photos, 28 KB on average) through the real prepare stage,
with a global caption and eight captioned regions each, tiled to --rows rows; the image bytes are
replaced by random bytes of the same length (encoded images hardly compress; tiled copies would,
as zstd finds repeats inside a page). One row in 20 is rejected. Every row carries its shard's
size, as the build's read step adds it.
- sink: `PieceWriter` (finecap/stages/write.py) on batches of one whole shard (--shard-rows
  rows), `route_piece` and `commit_shard` (finecap/runtime/commit.py): the path a build takes
  when shards are no bigger than the last stage's batch (pipelines/local.yaml). The worker writes
  the shard's final Parquet files; the driver checks their footers and writes the manifest.
- sink_split: the same on batches of --batch rows, so each shard arrives in pieces
  (pipelines/cluster-gpu.yaml: 2048-row shards, 128-row batches): pieces are staged as Arrow IPC,
  then merged and written by the commit, so every byte is written twice.
- raw: `pq.write_table` of the same final data and rejects tables per shard, same compression
  and default options, to local files; raw_fsync adds an fsync per file, as the sink does;
  raw_paged_fsync also takes the shard writer's options (rows handed to the column writers in
  batches of about a page, finecap/dataset/writer.py): the floor for any durable sink.
Interleaved repetitions (rotating order); rows/s from the median time, CPU time beside it.
--profile prints the sink's top functions.

History: staging zstd Parquet pieces with an fsync each made the sink 0.11x raw; uncompressed
IPC pieces, memory-mapped on read, no copy of the images when no row is dropped: 0.35x. Then
(2026-12-01, four runs at load 5-8 on 2 CPUs): a shard that arrives whole is written straight
to its final files (one write per byte), rows are selected as zero-copy slices, and the shard
writer hands rows to pyarrow's column writers in batches of about a page instead of 1024 rows
(28 MB of images): sink 1.02-2.2x raw, 0.69-0.75x raw_paged_fsync (what remains is the
sink's own work: rejects split out, provenance, a manifest and its fsync per shard, footers
read back); sink_split 0.55-0.66x (one noisy run 1.16x). The sample build (16 and 40 images,
pipelines/local.yaml) committed every shard the direct way.

    python benchmarks/sink_write.py [--rows 4096] [--shard-rows 2048] [--batch 128] [--repeats 9]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def finished_rows(folder: Path, config, rows: int, shard_rows: int) -> pa.Table:
    """Rows as they reach the writer: prepared, captioned, with regions, some rejected."""
    from finecap.sources import make_source
    from finecap.stages.caption import CAPTION_TYPE
    from finecap.stages.detect import region, regions_type
    from finecap.stages.prepare import PrepareStage
    from finecap.stages.write import SHARD_ROWS

    source = make_source(config)
    base = pa.concat_tables([PrepareStage(config)(source.read(spec)) for spec in source.plan()])
    base = base.filter(pc.is_null(base.column("reject_stage")))
    tiled = pa.concat_tables([base] * -(-rows // base.num_rows)).slice(0, rows).combine_chunks()
    # Encoded images hardly compress, but tiled copies would: zstd finds repeats inside a page.
    rng = np.random.default_rng(0)
    images = [rng.bytes(len(b)) for b in tiled.column("image_bytes").to_pylist()]
    text = "A detailed scene with a red square beside a blue circle on a pale background, " * 4
    caption = {"text": text, "model": "tiny:vlm-a", "model_revision": "sha256:5ef7", "prompt_id":
               "global_detailed/v1", "num_tokens": 80}
    regions = [{**region([0.1 * k, 0.1, 0.1 * k + 0.2, 0.5], "detector", 0.9, f"shape {k}", "shape"),
                "caption": "a small coloured shape with a thin dark outline", "caption_model": "tiny:vlm-a@sha256:5ef7"}
               for k in range(8)]
    columns = {
        "key": [f"images/{i:07d}.png" for i in range(rows)],
        "shard": [f"part-{i // shard_rows:06d}" for i in range(rows)],
        "image_bytes": pa.array(images, pa.binary()),
        "captions": pa.array([[caption]] * rows, pa.list_(CAPTION_TYPE)),
        "regions": pa.array([regions] * rows, regions_type()),
        "reject_stage": ["filter" if i % 20 == 7 else None for i in range(rows)],
        "reject_reason": ["too_small" if i % 20 == 7 else None for i in range(rows)],
        "reject_detail": ["short side 300 < 448" if i % 20 == 7 else None for i in range(rows)],
        **{f"_seconds_{s}": pa.array([0.01] * rows) for s in ("read", "prepare", "caption", "regions")},
        SHARD_ROWS: pa.array([min(shard_rows, rows - i // shard_rows * shard_rows) for i in range(rows)], pa.int64()),
    }
    for name, values in columns.items():
        i = tiled.column_names.index(name) if name in tiled.column_names else -1
        values = values if isinstance(values, pa.Array) else pa.array(values)
        tiled = tiled.set_column(i, name, values) if i >= 0 else tiled.append_column(name, values)
    return tiled


def run_sink(rows: pa.Table, config, out: str, batch: int) -> None:
    """What the build's write stage and driver do with batches of `batch` rows, without Ray."""
    from finecap.runtime.commit import ShardProgress, commit_shard, route_piece
    from finecap.stages.write import PieceWriter

    config = replace(config, output=replace(config.output, uri=out))
    writer = PieceWriter(config, "sha256:bench")
    shards = rows.column("shard")
    progress = {s: ShardProgress(s, pc.sum(pc.equal(shards, s)).as_py()) for s in pc.unique(shards).to_pylist()}
    facts = {"config_hash": "sha256:bench", "models": []}
    compression = None if config.output.compression == "none" else config.output.compression
    for start in range(0, rows.num_rows, batch):
        for piece in writer(rows.slice(start, batch)).to_pylist():
            shard = route_piece(progress, piece)
            if shard is not None:
                commit_shard(out, shard, facts, compression)
    if progress:
        raise SystemExit(f"shards never completed: {sorted(progress)}")


def final_tables(rows: pa.Table, config) -> list[tuple[str, pa.Table, pa.Table]]:
    """What the sink commits per shard: (shard, data, rejects), built outside the raw timing."""
    from finecap.stages.write import PieceWriter, reject_rows

    writer, shards, tables = PieceWriter(config, "sha256:bench"), rows.column("shard"), []
    for shard in pc.unique(shards).to_pylist():
        part = rows.filter(pc.equal(shards, shard))
        mask = pc.is_valid(part.column("reject_stage"))
        tables.append((shard, writer.data_rows(part.filter(pc.invert(mask)), shard), reject_rows(part.filter(mask))))
    return tables


def run_raw(tables, out: Path, compression: str | None, durable: bool, paged: bool = False) -> None:
    """`durable`: fsync each file, as the sink does for its final files (the commit's guarantee).
    `paged`: the shard writer's options (dataset/writer.py parquet_options) instead of defaults."""
    from finecap.dataset.writer import parquet_options

    for folder in ("data", "rejects"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for shard, data, rejects in tables:
        for folder, table in (("data", data), ("rejects", rejects)):
            path = out / folder / f"{shard}.parquet"
            options = parquet_options(table, compression) if paged else {"compression": compression}
            pq.write_table(table, path, **options)
            if durable:
                fd = os.open(path, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)


def check_same(out: Path, tables) -> None:
    """The sink committed exactly the rows the raw writer writes: a like-for-like comparison."""
    from finecap.dataset import read_manifest

    for shard, data, rejects in tables:
        files = read_manifest(str(out), shard)["files"]
        for kind, expected in (("data", data), ("rejects", rejects)):
            written = pq.read_table(out / files[kind])
            if not written.equals(expected):
                raise SystemExit(f"sink wrote different {kind} rows than the raw tables for {shard}")


def profile_sink(rows, config, out: str, batch: int) -> str:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(run_sink, rows, config, out, batch)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--shard-rows", type=int, default=2048, help="rows per shard (cluster-gpu.yaml)")
    parser.add_argument("--batch", type=int, default=128,
                        help="rows per write batch of sink_split (a Ray Data block; cluster-gpu.yaml)")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repetitions (5 kinds)")
    parser.add_argument("--scenes", type=int, default=24, help="distinct sample scenes to tile")
    parser.add_argument("--profile", action="store_true", help="print the sink's cProfile top functions")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    from benchmarks.record import record
    from finecap.config import load_config
    from finecap.samples.source import write_sample_source

    tmp = Path(tempfile.mkdtemp(prefix="sink-write-"))
    try:
        folder = write_sample_source(tmp / "src", n_scenes=args.scenes, seed=5)
        config = load_config(REPO / "pipelines/local.yaml", [], **{"source.uri": str(folder),
                                                                   "output.uri": str(tmp / "sink")})
        rows = finished_rows(folder, config, args.rows, args.shard_rows)
        tables = final_tables(rows, config)
        compression = None if config.output.compression == "none" else config.output.compression
        image_mb = pc.sum(pc.binary_length(rows.column("image_bytes"))).as_py() / 1e6
        times = {"sink": [], "sink_split": [], "raw": [], "raw_fsync": [], "raw_paged_fsync": []}
        batches = {"sink": args.shard_rows, "sink_split": args.batch}
        cpu = {kind: [] for kind in times}
        for rep in range(args.repeats):
            kinds = list(times)
            order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
            for kind in order:
                target = tmp / f"{kind}-{rep}"
                started, cpu_started = time.perf_counter(), time.process_time()
                if kind in batches:
                    run_sink(rows, config, str(target), batches[kind])
                else:
                    run_raw(tables, target, compression, durable=kind != "raw", paged=kind == "raw_paged_fsync")
                times[kind].append(time.perf_counter() - started)
                cpu[kind].append(time.process_time() - cpu_started)
                if kind in batches and rep == 0:
                    check_same(target, tables)
                shutil.rmtree(target)
        if args.profile:
            print(profile_sink(rows, config, str(tmp / "profile"), args.shard_rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {"rows": args.rows, "shard_rows": args.shard_rows, "batch_rows": args.batch,
               "image_mb": round(image_mb, 1), "compression": compression, "repeats": args.repeats}
    for kind, seconds in times.items():
        median = statistics.median(seconds)
        figures[kind] = {"seconds": [round(s, 3) for s in seconds], "median_s": round(median, 3),
                         "rows_per_s": round(args.rows / median, 1), "mb_per_s": round(image_mb / median, 1),
                         "cpu_median_s": round(statistics.median(cpu[kind]), 3)}
    ratio = figures["sink"]["rows_per_s"] / figures["raw"]["rows_per_s"]
    split = figures["sink_split"]["rows_per_s"] / figures["raw"]["rows_per_s"]
    figures["ratio"] = round(ratio, 3)
    figures["ratio_vs_raw_fsync"] = round(figures["sink"]["rows_per_s"] / figures["raw_fsync"]["rows_per_s"], 3)
    figures["ratio_cpu"] = round(figures["raw"]["cpu_median_s"] / figures["sink"]["cpu_median_s"], 3)
    figures["ratio_split"] = round(split, 3)
    figures["ratio_vs_raw_paged_fsync"] = round(
        figures["sink"]["rows_per_s"] / figures["raw_paged_fsync"]["rows_per_s"], 3)
    figures["load_average_1m"] = round(os.getloadavg()[0], 1)
    print(json.dumps(figures, indent=2))
    print(f"sink / raw write_table: {ratio:.2f}x rows/s ({figures['sink']['rows_per_s']} vs "
          f"{figures['raw']['rows_per_s']} rows/s); shards split across batches: {split:.2f}x")
    if not args.no_record:
        record("sink_write", figures, f"sink = {ratio:.2f}x raw write_table ({figures['sink']['rows_per_s']:.0f} "
               f"rows/s, {figures['sink']['mb_per_s']} MB/s of images), {figures['ratio_vs_raw_paged_fsync']:.2f}x "
               f"raw with the writer's options + fsync; shards split across batches {split:.2f}x", ">= 0.8x")


if __name__ == "__main__":
    main()
