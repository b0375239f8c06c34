"""Retrieval metrics against hand-worked answers, and `eval retrieval`'s protocol flags."""

from __future__ import annotations

import pytest
import torch

from finecap.cli import main
from finecap.train.eval_retrieval import grouped_recall_at_k, recall_at_k

# 3 images, 5 texts: image 0 owns texts 0 and 1, image 1 owns text 2, image 2 owns texts 3 and 4.
OWNER = torch.tensor([0, 0, 1, 2, 2])
SIM = torch.tensor([
    [0.1, 0.9, 0.5, 0.2, 0.3],  # own best 0.9 (text 1): rank 0; its first caption alone ranks 4th
    [0.2, 0.1, 0.3, 0.7, 0.0],  # own 0.3: text 3 scores higher, rank 1
    [0.6, 0.0, 0.1, 0.2, 0.8],  # own best 0.8 (text 4): rank 0; its first caption alone ranks 3rd
])


def test_image_to_text_counts_any_of_an_images_captions():
    result = grouped_recall_at_k(SIM, OWNER, ks=(1, 2))
    # Worked by hand: image ranks 0, 1, 0.
    assert result["image_to_text"] == {"r1": pytest.approx(2 / 3), "r2": 1.0}


def test_image_to_text_is_not_the_first_caption_only_protocol():
    """A protocol that scores only each image's first caption gets R@1 = 0 here, ANY gets 2/3."""
    first_only = torch.tensor([SIM[i, OWNER.tolist().index(i)] for i in range(3)]).unsqueeze(1)
    assert float(((SIM > first_only).sum(1) < 1).float().mean()) == 0.0
    assert grouped_recall_at_k(SIM, OWNER)["image_to_text"]["r1"] == pytest.approx(2 / 3)


def test_text_to_image_scores_every_caption_against_its_own_image():
    result = grouped_recall_at_k(SIM, OWNER, ks=(1, 2, 3))
    # Per text, the images scoring above its own: text 0: 2, text 1: 0, text 2: 1, text 3: 1, text 4: 0.
    assert result["text_to_image"] == {"r1": pytest.approx(2 / 5), "r2": pytest.approx(4 / 5), "r3": 1.0}


def test_one_caption_per_image_is_the_one_to_one_protocol():
    torch.manual_seed(0)
    sim = torch.randn(40, 40)
    grouped = grouped_recall_at_k(sim, torch.arange(40))
    assert grouped["image_to_text"] == recall_at_k(sim)
    assert grouped["text_to_image"] == recall_at_k(sim.t())


def test_grouped_recall_matches_a_query_by_query_count_with_ties():
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        n_images = int(torch.randint(2, 20, (), generator=gen))
        owner = torch.cat([torch.arange(n_images), torch.randint(0, n_images, (30,), generator=gen)])
        sim = torch.randn(n_images, owner.numel(), generator=gen).round(decimals=1)  # ties happen
        got = grouped_recall_at_k(sim, owner, ks=(1, 3))
        texts = range(owner.numel())
        for k in (1, 3):
            found = [sum(float(sim[i, t]) > max(float(sim[i, u]) for u in texts if owner[u] == i) for t in texts) < k
                     for i in range(n_images)]
            assert got["image_to_text"][f"r{k}"] == pytest.approx(sum(found) / n_images)
            hits = [sum(float(sim[i, t]) > float(sim[owner[t], t]) for i in range(n_images)) < k for t in texts]
            assert got["text_to_image"][f"r{k}"] == pytest.approx(sum(hits) / owner.numel())


def test_ties_count_for_the_query():
    assert grouped_recall_at_k(torch.ones(2, 2), torch.tensor([0, 1]), ks=(1,))["image_to_text"]["r1"] == 1.0


def test_an_image_without_captions_is_refused():
    with pytest.raises(ValueError, match="at least one text"):
        grouped_recall_at_k(torch.zeros(2, 2), torch.tensor([0, 0]))


@pytest.mark.parametrize("argv, says", [
    (["--karpathy", "k.json", "--images", "img"], "--karpathy, --images: only with --protocol karpathy"),
    (["--data", "OUT", "--split", "val"], "--split: only with --protocol karpathy"),
    ([], "needs --data"),
    (["--protocol", "karpathy", "--data", "OUT", "--karpathy", "k.json", "--images", "img"],
     "--data: only with --protocol finecap"),
    (["--protocol", "karpathy", "--karpathy", "k.json"], "needs --karpathy FILE and --images DIR"),
])
def test_a_wrong_combination_of_flags_is_one_error_line(argv, says, capsys):
    assert main(["eval", "retrieval", "--checkpoint", "nowhere", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err
