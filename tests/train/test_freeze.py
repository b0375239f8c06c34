"""A param group frozen until a step: still until then, trained at its own rate after, resumable either side."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finecap.train import distributed as D
from finecap.train.freeze import FROZEN_UNTIL, group_factors, hold_frozen
from finecap.train.logs import warmup_cosine

UNTIL, SCALE, LR, STEPS = 3, 0.5, 0.05, 6


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
    groups = [{"params": list(model[2].parameters())},
              {"params": list(model[0].parameters()), "lr": LR * SCALE, FROZEN_UNTIL: UNTIL}]
    optimizer = torch.optim.AdamW(groups, lr=LR, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, group_factors(optimizer, warmup_cosine(STEPS, 2, 0.1)))
    return model, optimizer, scheduler


def _train(model, optimizer, scheduler, steps: range) -> list[dict]:
    """Train `steps`; per step: the lrs used and copies of both layers' weights after it."""
    history = []
    for step in steps:
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        hold_frozen(optimizer, step)
        lrs = [g["lr"] for g in optimizer.param_groups]
        optimizer.step()
        scheduler.step()
        history.append({"lrs": lrs, "head": model[2].weight.detach().clone(),
                        "frozen": model[0].weight.detach().clone()})
    return history


def test_frozen_group_stays_still_then_trains_at_its_scale():
    model, optimizer, scheduler = _setup()
    before = model[0].weight.detach().clone()
    history = _train(model, optimizer, scheduler, range(STEPS))
    for step, h in enumerate(history):
        head_lr, frozen_lr = h["lrs"]
        if step < UNTIL:
            assert frozen_lr == 0.0 and torch.equal(h["frozen"], before), step  # bit-identical: no decay either
        else:
            assert frozen_lr == pytest.approx(head_lr * SCALE), step
            assert not torch.equal(h["frozen"], history[step - 1]["frozen"] if step > UNTIL else before), step
        assert head_lr > 0 and not torch.equal(h["head"], history[step - 1]["head"] if step else h["head"] * 0)
    # Adam restarted for the unfrozen group at step UNTIL: its bias correction counts from there.
    assert int(optimizer.state[model[0].weight]["step"]) == STEPS - UNTIL
    assert int(optimizer.state[model[2].weight]["step"]) == STEPS


def test_frozen_grads_stay_out_of_the_clip_norm():
    model, optimizer, _ = _setup()
    model(torch.randn(8, 4)).pow(2).mean().backward()
    head_only = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model[2].parameters()]))
    hold_frozen(optimizer, 0)
    total = torch.nn.utils.clip_grad_norm_(list(model.parameters()), 1e9)
    assert float(total) == pytest.approx(float(head_only))
    assert all(p.grad is not None and not p.grad.any() for p in model[0].parameters())  # zeroed, not dropped


@pytest.mark.parametrize("cut", [1, UNTIL, UNTIL + 1])
def test_resume_either_side_of_the_boundary_matches_the_uninterrupted_run(cut):
    model, optimizer, scheduler = _setup()
    whole = _train(model, optimizer, scheduler, range(STEPS))

    model, optimizer, scheduler = _setup()
    _train(model, optimizer, scheduler, range(cut))
    weights, optim_state = D.full_state(model, optimizer)  # what a checkpoint holds
    sched_state = scheduler.state_dict()
    model, optimizer, scheduler = _setup(seed=1)  # a new process: other initial weights, all restored
    model.load_state_dict(weights)
    D.load_optimizer(model, optimizer, optim_state)  # refuses state missing for a param: frozen ones have it
    scheduler.load_state_dict(sched_state)
    assert optimizer.param_groups[1][FROZEN_UNTIL] == UNTIL
    rest = _train(model, optimizer, scheduler, range(cut, STEPS))
    for a, b in zip(whole[cut:], rest, strict=True):
        assert a["lrs"] == pytest.approx(b["lrs"])
        assert torch.equal(a["frozen"], b["frozen"]) and torch.equal(a["head"], b["head"])
