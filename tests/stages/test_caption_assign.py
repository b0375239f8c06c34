from collections import Counter

from finecap.config import CaptionerConfig
from finecap.stages.caption_assign import assigned_captioners

CAPTIONERS = [CaptionerConfig(name="a", model="x", weight=1.0), CaptionerConfig(name="b", model="y", weight=3.0)]


def test_all_assigns_every_captioner():
    assert assigned_captioners("k", CAPTIONERS, "all", 1) == ["a", "b"]


def test_weighted_is_deterministic_and_follows_weights():
    keys = [f"img-{i}" for i in range(4000)]
    first = [assigned_captioners(k, CAPTIONERS, "weighted", 1)[0] for k in keys]
    assert first == [assigned_captioners(k, CAPTIONERS, "weighted", 1)[0] for k in keys]
    share_b = Counter(first)["b"] / len(keys)
    assert 0.72 < share_b < 0.78  # weight 3 of 4


def test_weighted_k_gives_distinct_captioners_and_zero_weight_never_wins():
    assert sorted(assigned_captioners("k", CAPTIONERS, "weighted", 2)) == ["a", "b"]
    off = [CaptionerConfig(name="a", model="x", weight=0.0), CaptionerConfig(name="b", model="y")]
    assert {assigned_captioners(f"k{i}", off, "weighted", 1)[0] for i in range(200)} == {"b"}


def test_adding_a_captioner_only_moves_images_it_wins():
    keys = [f"img-{i}" for i in range(2000)]
    before = {k: assigned_captioners(k, CAPTIONERS, "weighted", 1)[0] for k in keys}
    more = CAPTIONERS + [CaptionerConfig(name="c", model="z")]
    after = {k: assigned_captioners(k, more, "weighted", 1)[0] for k in keys}
    assert all(after[k] in (before[k], "c") for k in keys)
