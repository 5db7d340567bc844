import math

import pytest
import torch
from torch import nn

from ssl_lab.config import get_cfg
from ssl_lab.solver import LARS, build_optimizer, scaled_lr

from conftest import lr_trajectory


def test_warmup_then_cosine():
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER, cfg.SOLVER.WARMUP_ITERS = 0.1, 512, 100, 10
    lrs = lr_trajectory(cfg, 100)
    peak = 0.2  # linear scaling: 0.1 * 512 / 256
    assert scaled_lr(cfg) == pytest.approx(peak)
    assert lrs[0] < 0.01 * peak and all(a < b for a, b in zip(lrs[:10], lrs[1:11]))
    assert lrs[10] == pytest.approx(peak * (1 + math.cos(math.pi * 0.1)) / 2, rel=1e-3)
    assert lrs[-1] < 0.01 * peak


def test_multistep():
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME, cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS = "WarmupMultiStepLR", 30, (10, 20)
    lrs = lr_trajectory(cfg, 30)
    assert lrs[5] == pytest.approx(0.03) and lrs[15] == pytest.approx(0.003) and lrs[25] == pytest.approx(0.0003)


def test_lars_excludes_bias_and_norm_from_decay_and_adaptation():
    cfg = get_cfg()
    cfg.SOLVER.OPTIMIZER, cfg.SOLVER.WEIGHT_DECAY = "LARS", 0.1
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    optimizer = build_optimizer(cfg, model)
    assert isinstance(optimizer, LARS)
    plain = optimizer.param_groups[1]
    assert plain["lars"] is False and plain["weight_decay"] == 0.0 and len(plain["params"]) == 3


def test_lars_step_is_trust_ratio_scaled():
    p = nn.Parameter(torch.full((4,), 2.0))
    optimizer = LARS([p], lr=1.0, momentum=0.0, eta=0.1)
    p.grad = torch.full((4,), 0.5)
    optimizer.step()
    # update = lr * eta * ||p|| / ||g|| * g = 0.1 * 4 / 1 * 0.5
    torch.testing.assert_close(p.detach(), torch.full((4,), 2.0 - 0.2))


def test_unknown_optimizer():
    cfg = get_cfg()
    cfg.SOLVER.OPTIMIZER = "Adam"
    with pytest.raises(ValueError, match="'SGD', 'LARS' or 'AdamW'"):
        build_optimizer(cfg, nn.Linear(2, 2))


def test_epoch_schedule_becomes_iterations_and_max_iter_rescales_it():
    from ssl_lab.engine import resolve_schedule

    cfg = get_cfg()
    cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.EPOCHS, cfg.SOLVER.WARMUP_EPOCHS = 100, 10, 1.0
    cfg.SOLVER.STEP_EPOCHS = (6, 8)
    full = resolve_schedule(cfg, num_images=1050)  # 10 iterations per epoch
    assert (full.SOLVER.MAX_ITER, full.SOLVER.WARMUP_ITERS, tuple(full.SOLVER.STEPS)) == (100, 10, (60, 80))
    cfg.SOLVER.MAX_ITER = 20  # e.g. from the command line: the same schedule, five times shorter
    short = resolve_schedule(cfg, num_images=1050)
    assert (short.SOLVER.MAX_ITER, short.SOLVER.WARMUP_ITERS, tuple(short.SOLVER.STEPS)) == (20, 2, (12, 16))
    assert short.is_frozen()
    with pytest.raises(ValueError, match="fewer than one batch"):
        resolve_schedule(cfg, num_images=50)


@pytest.mark.parametrize(
    "max_iter,step_epochs,factors",
    [
        (4, (60, 80), [1, 1, 0.1, 0.01]),  # iterations 2.4 and 3.2 round to 2 and 3
        (3, (60, 80), [1, 1, 0.01]),  # 1.8 and 2.4 both round to 2: both decays there
        (2, (60, 80), [1, 0.1]),  # 1.6 rounds to 2, the end: it never lowers the lr
        (4, (0.1, 60), [0.1, 0.1, 0.01, 0.01]),  # 0.004 rounds to 0: lowered from the first iteration
    ],
)
def test_epoch_steps_that_a_short_run_rounds_together_or_onto_its_ends(max_iter, step_epochs, factors):
    """A 100-epoch schedule shortened to a few iterations: step e lands on round(e * MAX_ITER / 100)."""
    from ssl_lab.solver import check_lr_steps, resolve_schedule

    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME, cfg.SOLVER.REFERENCE_BATCH_SIZE, cfg.SOLVER.BASE_LR = "WarmupMultiStepLR", 0, 1.0
    cfg.SOLVER.EPOCHS, cfg.SOLVER.STEP_EPOCHS, cfg.SOLVER.MAX_ITER = 100, step_epochs, max_iter
    resolved = resolve_schedule(cfg, num_images=100_000)
    check_lr_steps(resolved)  # steps inside the 100 epochs: not the user's error
    assert lr_trajectory(resolved, max_iter) == pytest.approx(factors)
