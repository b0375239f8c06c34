"""The Parquet sink (stage pieces, then commit shards) vs a bare `pyarrow.parquet.write_table`.

Why: the sink writes every row twice (a staged piece per batch, then the shard's final file) so
that batches can be committed per shard exactly once; this measures what that costs next to the
cheapest possible write of the same rows. Goal: sink >= 0.8x the raw throughput.

Rows: the sample source (scenes and photos, 28 KB on average) through the real prepare stage,
with a global caption and eight captioned regions each, tiled to --rows rows; the image bytes are
replaced by random bytes of the same length (encoded images hardly compress; tiled copies would,
as zstd finds repeats inside a page). One row in 20 is rejected.
- sink: `PieceWriter` (finecap/stages/write.py) on batches of --batch rows, then `commit_shard`
  (finecap/runtime/commit.py) per shard of --shard-rows rows: the code `finecap build` runs,
  without Ray.
- raw: `pq.write_table` of the same final data and rejects tables per shard, same compression
  and default row groups (what the commit uses), to local files.
Interleaved repetitions (rotating order); rows/s from the median time, CPU time beside it; also
raw + an fsync per file, as the sink's commit does. --profile prints the sink's top functions.

Profiled at 0.11x raw: Parquet-encoding, fsyncing and decoding every staged piece took most of
the time. Pieces are now uncompressed Arrow IPC, not fsynced, memory-mapped on read, and images
are not copied when no row is dropped: 0.35x (2.9x the rows/s). The rest is the design: every
byte is written twice (piece, then shard) and each shard's files are fsynced before its manifest.

    python benchmarks/sink_write.py [--rows 2048] [--shard-rows 512] [--batch 64] [--repeats 5]
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
    }
    for name, values in columns.items():
        i = tiled.column_names.index(name) if name in tiled.column_names else -1
        values = values if isinstance(values, pa.Array) else pa.array(values)
        tiled = tiled.set_column(i, name, values) if i >= 0 else tiled.append_column(name, values)
    return tiled


def run_sink(rows: pa.Table, config, out: str, batch: int) -> None:
    from finecap.runtime.commit import ShardProgress, commit_shard
    from finecap.stages.write import PieceWriter

    writer = PieceWriter(config, "sha256:bench")
    shards = rows.column("shard")
    progress = {s: ShardProgress(s, pc.sum(pc.equal(shards, s)).as_py()) for s in pc.unique(shards).to_pylist()}
    facts = {"config_hash": "sha256:bench", "models": []}
    for start in range(0, rows.num_rows, batch):
        for piece in writer(rows.slice(start, batch)).to_pylist():
            shard = progress[piece["shard"]]
            shard.add(piece)
            if shard.complete:
                commit_shard(out, shard, facts, None if config.output.compression == "none" else config.output.compression)


def final_tables(rows: pa.Table, config) -> list[tuple[str, pa.Table, pa.Table]]:
    """What the sink commits per shard: (shard, data, rejects), built outside the raw timing."""
    from finecap.stages.write import PieceWriter, reject_rows

    writer, shards, tables = PieceWriter(config, "sha256:bench"), rows.column("shard"), []
    for shard in pc.unique(shards).to_pylist():
        part = rows.filter(pc.equal(shards, shard))
        mask = pc.is_valid(part.column("reject_stage"))
        tables.append((shard, writer.data_rows(part.filter(pc.invert(mask)), shard), reject_rows(part.filter(mask))))
    return tables


def run_raw(tables, out: Path, compression: str | None, durable: bool) -> None:
    """`durable`: fsync each file, as the sink does for its final files (the commit's guarantee)."""
    for folder in ("data", "rejects"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for shard, data, rejects in tables:
        for folder, table in (("data", data), ("rejects", rejects)):
            path = out / folder / f"{shard}.parquet"
            pq.write_table(table, path, compression=compression)
            if durable:
                fd = os.open(path, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)


def check_same(out: Path, tables) -> None:
    """The sink committed exactly the rows the raw writer writes: a like-for-like comparison."""
    for shard, data, rejects in tables:
        for folder, expected in (("data", data), ("rejects", rejects)):
            written = pq.read_table(out / folder / f"{shard}.parquet")
            if not written.equals(expected):
                raise SystemExit(f"sink wrote different {folder} rows than the raw tables for {shard}")


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
    parser.add_argument("--batch", type=int, default=128, help="rows per write batch (a Ray Data block)")
    parser.add_argument("--repeats", type=int, default=5)
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
        times = {"sink": [], "raw": [], "raw_fsync": []}
        cpu = {kind: [] for kind in times}
        for rep in range(args.repeats):
            order = list(times)[rep % 3:] + list(times)[:rep % 3]
            for kind in order:
                target = tmp / f"{kind}-{rep}"
                started, cpu_started = time.perf_counter(), time.process_time()
                if kind == "sink":
                    run_sink(rows, config, str(target), args.batch)
                else:
                    run_raw(tables, target, compression, durable=kind == "raw_fsync")
                times[kind].append(time.perf_counter() - started)
                cpu[kind].append(time.process_time() - cpu_started)
                if kind == "sink" and rep == 0:
                    check_same(target, tables)
                shutil.rmtree(target)
        if args.profile:
            print(profile_sink(rows, config, str(tmp / "profile"), args.batch))
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
    figures["ratio"] = round(ratio, 3)
    figures["ratio_vs_raw_fsync"] = round(figures["sink"]["rows_per_s"] / figures["raw_fsync"]["rows_per_s"], 3)
    figures["ratio_cpu"] = round(figures["raw"]["cpu_median_s"] / figures["sink"]["cpu_median_s"], 3)
    figures["load_average_1m"] = round(os.getloadavg()[0], 1)
    print(json.dumps(figures, indent=2))
    print(f"sink / raw write_table: {ratio:.2f}x rows/s ({figures['sink']['rows_per_s']} vs "
          f"{figures['raw']['rows_per_s']} rows/s)")
    if not args.no_record:
        record("sink_write", figures, f"sink = {ratio:.2f}x raw write_table ({figures['sink']['rows_per_s']:.0f} "
               f"rows/s, {figures['sink']['mb_per_s']} MB/s of images)", ">= 0.8x")


if __name__ == "__main__":
    main()
