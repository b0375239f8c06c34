"""Parameter groups frozen until a step, then trained (stage II's pretrained text tower).

A group that carries `frozen_until: N` gets learning rate 0 and zeroed gradients for steps
0..N-1 (0-based, as `phases.until_step` counts), and from step N its own Adam state starts
afresh and it follows the stage's warmup + cosine schedule at its group's base learning rate.

Why not `requires_grad_(False)` until the step: DDP builds its gradient reducer once, over the
parameters that require grad, and then expects a gradient for every one of them each step;
FSDP2 shards the same fixed set. So frozen parameters keep `requires_grad`, take part in the
backward and the all-reduce, and are held still here instead. Why zeroed rather than dropped
(`grad = None`) gradients: AdamW would then keep no state for them, and
`set_optimizer_state_dict` refuses a checkpoint that lacks state for a parameter that requires
grad ("Missing optimizer state for parameter ... in checkpoint", measured with torch 2.13), so a
checkpoint written while frozen would not resume. Zero gradients at learning rate 0 leave the
weights bit-identical (no step, no decoupled weight decay) and the moments at zero, and keep
the frozen tower out of the gradient-norm clip.

The schedule travels with the optimizer state: `frozen_until` and the group's base learning rate
are param-group entries, so a resumed run keeps the schedule it started with (as it keeps its
learning rate) and is frozen, or not, exactly as the uninterrupted run was at that step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

FROZEN_UNTIL = "frozen_until"


def frozen_until(group: dict) -> int:
    return int(group.get(FROZEN_UNTIL, 0))


def group_factors(optimizer: torch.optim.Optimizer, base: Callable[[int], float]) -> list[Callable[[int], float]]:
    """One LambdaLR factor per param group: 0 while the group is frozen, else `base`.

    Each factor reads its group when called, so the values a checkpoint restores are the ones used.
    """

    def factor(index: int) -> Callable[[int], float]:
        def at(step: int) -> float:
            return 0.0 if step < frozen_until(optimizer.param_groups[index]) else base(step)

        return at

    return [factor(i) for i in range(len(optimizer.param_groups))]


def hold_frozen(optimizer: torch.optim.Optimizer, step: int) -> None:
    """Before clipping and stepping 0-based step `step`: zero frozen groups' grads; restart Adam at unfreezing.

    At the first trained step the group's Adam state is cleared: its moments are zero anyway,
    but its step count would otherwise skip Adam's bias correction and scale the first updates
    by (1 - beta1) / sqrt(1 - beta2) (3.2x the rate with beta2 = 0.999).
    """
    for group in optimizer.param_groups:
        until = frozen_until(group)
        if step < until:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.zero_()
        elif step == until and until > 0:
            for p in group["params"]:
                optimizer.state.pop(p, None)
