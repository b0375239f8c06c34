"""HashTally and DistinctHashes against numpy's unique over the same values, across many merges."""

from __future__ import annotations

import numpy as np

from finecap.quality.tally import DistinctHashes, HashTally, text_hash


def test_counts_and_first_origins_match_numpy_over_many_merges():
    rng = np.random.default_rng(7)
    chunks = [rng.integers(0, 50_000, size=int(rng.integers(1, 30_000)), dtype=np.uint64) for _ in range(40)]
    tally = HashTally()
    for origin, chunk in enumerate(chunks):
        tally.add(chunk, origin)
    values, counts, origins = tally.result()
    every = np.concatenate(chunks)
    expected_values, expected_counts = np.unique(every, return_counts=True)
    assert np.array_equal(values, expected_values) and np.array_equal(counts, expected_counts)
    first = {}
    for origin, chunk in enumerate(chunks):
        for value in np.unique(chunk).tolist():
            first.setdefault(value, origin)
    assert origins.tolist() == [first[v] for v in values.tolist()]
    assert (tally.distinct(), tally.total()) == (expected_values.size, every.size)
    distinct = DistinctHashes()
    for chunk in chunks:
        distinct.add(chunk)
    assert distinct.distinct() == expected_values.size


def test_an_empty_tally_and_stable_text_hashes():
    tally = HashTally()
    tally.add([])
    assert (tally.distinct(), tally.total()) == (0, 0)
    assert DistinctHashes().distinct() == 0
    assert text_hash("a red circle") == text_hash("a red circle") != text_hash("a red circle.")
    assert text_hash("") == 0xB4B2797457A0A6E4  # blake2b-64 of nothing: the same in every process
