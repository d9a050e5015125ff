"""Optimiser parameter groups from the model's own declarations, and the LR schedule.

Models declare, as timm models do, which parameters take no weight decay (``no_weight_decay()``)
and how parameter names map to layers (``group_matcher()``); see
:class:`core.train.protocols.DeclaresParamGroups`. The groups themselves come from timm's
``param_groups_weight_decay`` / ``param_groups_layer_decay`` (BEiT's layer-wise decay: with ``L``
layer groups, group ``l`` gets ``lr * layer_decay ** (L - 1 - l)``; the stem is group 0, block ``i``
group ``i + 1``, the final norm joins the last block and heads come last at the full rate).
"""

from __future__ import annotations

import math

import torch
from timm.optim import param_groups_layer_decay, param_groups_weight_decay
from torch import nn

from core.train.protocols import DeclaresParamGroups

__all__ = ["param_groups", "warmup_cosine"]


def warmup_cosine(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup: float = 0.05,
                  min_lr_ratio: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup`` (fraction of steps, or steps if >= 1), then cosine decay."""
    warm = int(warmup if warmup >= 1 else warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def param_groups(model: nn.Module, *, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """AdamW-style groups of ``model``'s parameters; with ``layer_decay`` each group carries an
    ``lr_scale`` (applied by :class:`core.train.tasks.BaseTask` before the scheduler starts)."""
    if not isinstance(model, DeclaresParamGroups):
        raise TypeError(f"{type(model).__name__} must declare no_weight_decay() and group_matcher() "
                        "(core.train.protocols.DeclaresParamGroups).")
    exempt = sorted(model.no_weight_decay())
    if layer_decay:
        return param_groups_layer_decay(model, weight_decay=weight_decay, no_weight_decay_list=exempt,
                                        layer_decay=layer_decay)
    return param_groups_weight_decay(model, weight_decay=weight_decay, no_weight_decay_list=exempt)
