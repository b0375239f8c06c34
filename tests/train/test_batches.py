import numpy as np
import torch

from finecap.train.batches import BatchStream, Budget, make_loader
from finecap.train.recipe import ImagePrepare, no_fields
from finecap.train.shards import plan_units


def _stream(data, budget, workers=0, rank=0, world=1, positions=None):
    units = plan_units(str(data), min_units=world * max(1, workers))
    return BatchStream(units, ImagePrepare(112 * 112), no_fields, budget, rank, world, workers, seed=0,
                       shuffle=True, positions=positions)


def test_batches_respect_the_token_budget(small_synth):
    it = iter(_stream(small_synth, Budget(batch_size=64, max_tokens=300)))
    for _ in range(5):
        batch = next(it)
        assert batch.images.num_tokens <= 300
        assert batch.images.num_images == len(batch.keys) >= 1
        assert torch.equal(batch.images.seq_lens, torch.tensor([int(n) for n in batch.images.seq_lens]))


def test_workers_read_disjoint_rows_and_report_their_slot(small_synth):
    loader = make_loader(_stream(small_synth, Budget(batch_size=5), workers=2), workers=2)
    seen: dict[int, list[str]] = {0: [], 1: []}
    for batch, _ in zip(loader, range(12), strict=False):
        seen[batch.slot] += batch.keys
    assert seen[0] and seen[1]
    assert not set(seen[0]) & set(seen[1])
    assert len(seen[0]) + len(seen[1]) == 60  # 12 batches of 5 = one epoch


def test_a_batch_position_restarts_the_stream_after_that_batch(small_synth):
    stream = _stream(small_synth, Budget(batch_size=7))
    it = iter(stream)
    first = [next(it) for _ in range(3)]
    later = [next(it).keys for _ in range(3)]
    resumed = iter(_stream(small_synth, Budget(batch_size=7), positions={0: first[-1].position}))
    assert [next(resumed).keys for _ in range(3)] == later


def test_rows_without_a_sample_are_skipped_but_consumed(small_synth):
    prepare = ImagePrepare(112 * 112)

    def odd_only(row, rng: np.random.Generator):
        return prepare(row, rng) if int(row["key"][-1]) % 2 else None

    units = plan_units(str(small_synth))
    stream = BatchStream(units, odd_only, lambda s: {}, Budget(8), 0, 1, 0, seed=0, shuffle=False)
    batch = next(iter(stream))
    assert all(int(k[-1]) % 2 for k in batch.keys)
