"""Optimizers and LR schedules built from `cfg.SOLVER`."""

from typing import List

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    CosineParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
)
from torch import nn

from ssl_lab.config import ConfigError

from .lars import LARS


def scaled_lr(cfg) -> float:
    """BASE_LR scaled linearly by the global batch: BASE_LR * IMS_PER_BATCH / REFERENCE_BATCH_SIZE."""
    if cfg.SOLVER.REFERENCE_BATCH_SIZE <= 0:
        return cfg.SOLVER.BASE_LR
    return cfg.SOLVER.BASE_LR * cfg.SOLVER.IMS_PER_BATCH / cfg.SOLVER.REFERENCE_BATCH_SIZE


def _split_decay_groups(model: nn.Module):
    """Parameters split into (weights with decay, biases and norm parameters without)."""
    decay: List[nn.Parameter] = []
    no_decay: List[nn.Parameter] = []
    for module in model.modules():
        is_norm = isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm))
        for name, p in module.named_parameters(recurse=False):
            if p.requires_grad:
                (no_decay if is_norm or name == "bias" else decay).append(p)
    return decay, no_decay


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """SGD, LARS or AdamW over the trainable parameters, at the batch-scaled learning rate."""
    lr = scaled_lr(cfg)
    name = cfg.SOLVER.OPTIMIZER
    if name == "SGD":
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.SGD(
            params, lr=lr, momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV, weight_decay=cfg.SOLVER.WEIGHT_DECAY
        )
    if name == "LARS":
        decay, no_decay = _split_decay_groups(model)
        groups = [{"params": decay}]
        if cfg.SOLVER.LARS_EXCLUDE_BIAS_AND_NORM:
            groups.append({"params": no_decay, "weight_decay": 0.0, "lars": False})
        else:
            groups[0]["params"] = decay + no_decay
        return LARS(groups, lr=lr, momentum=cfg.SOLVER.MOMENTUM, weight_decay=cfg.SOLVER.WEIGHT_DECAY, eta=cfg.SOLVER.LARS_ETA)
    if name == "AdamW":  # decay on every parameter, as MoCo v3's main_moco.py
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=lr, betas=tuple(cfg.SOLVER.BETAS), weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    raise ConfigError(f"SOLVER.OPTIMIZER must be 'SGD', 'LARS' or 'AdamW', got '{name}'")


class LRMultiplier(torch.optim.lr_scheduler.LRScheduler):
    """Sets each group's lr to its initial lr times `multiplier(iteration / max_iter)`."""

    def __init__(self, optimizer, multiplier, max_iter: int, last_iter: int = -1):
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self):
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}

    def get_lr(self):
        factor = self._multiplier(min(self.last_epoch / self._max_iter, 1.0 - 1e-9))
        return [base * factor for base in self.base_lrs]


def build_lr_scheduler(cfg, optimizer) -> LRMultiplier:
    """Linear warmup (WARMUP_ITERS) then cosine or step decay, per iteration."""
    max_iter = cfg.SOLVER.MAX_ITER
    name = cfg.SOLVER.LR_SCHEDULER_NAME
    if name == "WarmupCosineLR":
        main = CosineParamScheduler(1.0, cfg.SOLVER.COSINE_END_FACTOR)
    elif name == "WarmupMultiStepLR":
        # The lr at iteration i is BASE_LR * GAMMA ** (the number of steps <= i). check_lr_steps (validate)
        # checked the steps; the ones a shortened epoch schedule rounds together, onto 0 or past the end are
        # merged, folded into the first value or never reached.
        steps = cfg.SOLVER.STEPS
        milestones = sorted({s for s in steps if 0 < s < max_iter})
        values = [cfg.SOLVER.GAMMA ** sum(s <= m for s in steps) for m in (0, *milestones)]
        main = MultiStepParamScheduler(values, milestones=milestones, num_updates=max_iter)
    else:
        raise ConfigError(f"SOLVER.LR_SCHEDULER_NAME must be WarmupCosineLR or WarmupMultiStepLR, got '{name}'")
    warmup = min(cfg.SOLVER.WARMUP_ITERS, max_iter) / max_iter
    if warmup > 0:
        # After warmup, the cosine either goes on from where it stands at the warmup's end ("fixed")
        # or starts from the full lr and spans the remaining iterations ("rescaled").
        restart = name == "WarmupCosineLR" and cfg.SOLVER.COSINE_AFTER_WARMUP
        end = 1.0 if restart else main(warmup)
        main = CompositeParamScheduler(
            [LinearParamScheduler(cfg.SOLVER.WARMUP_FACTOR * end, end), main],
            lengths=[warmup, 1 - warmup],
            interval_scaling=["rescaled", "rescaled" if restart else "fixed"],
        )
    return LRMultiplier(optimizer, main, max_iter)
