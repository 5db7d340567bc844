"""The schedule in iterations, from a config given in epochs or iterations."""

import logging

from ssl_lab.config import ConfigError

from .build import scaled_lr

__all__ = ["check_lr_steps", "resolve_schedule"]

logger = logging.getLogger(__name__)


def resolve_schedule(cfg, num_images: int):
    """Fill SOLVER.MAX_ITER / WARMUP_ITERS / STEPS from epochs; return a frozen copy.

    With SOLVER.EPOCHS > 0 the schedule's shape comes from WARMUP_EPOCHS and
    STEP_EPOCHS; its length is EPOCHS * iterations-per-epoch unless MAX_ITER > 0 is
    given, which shortens or stretches every position proportionally (a step then lands on
    round(epoch * MAX_ITER / EPOCHS); see check_lr_steps for the steps a shortening may round off).
    """
    cfg = cfg.clone()
    cfg.defrost()
    solver = cfg.SOLVER
    iters_per_epoch = num_images // solver.IMS_PER_BATCH
    if iters_per_epoch == 0:
        raise ConfigError(
            f"The training set has {num_images} images, fewer than one batch (SOLVER.IMS_PER_BATCH "
            f"= {solver.IMS_PER_BATCH}); lower SOLVER.IMS_PER_BATCH"
        )
    if solver.EPOCHS > 0:
        if solver.MAX_ITER <= 0:
            solver.MAX_ITER = int(solver.EPOCHS * iters_per_epoch)
        per_epoch = solver.MAX_ITER / solver.EPOCHS
        solver.WARMUP_ITERS = int(round(solver.WARMUP_EPOCHS * per_epoch))
        solver.STEPS = tuple(int(round(e * per_epoch)) for e in solver.STEP_EPOCHS)
    elif solver.MAX_ITER <= 0:
        raise ConfigError("Set SOLVER.MAX_ITER (iterations) or SOLVER.EPOCHS (epochs) to a positive value")
    if solver.WARMUP_ITERS > solver.MAX_ITER // 2:
        logger.warning(
            f"SOLVER.WARMUP_ITERS ({solver.WARMUP_ITERS}) is more than half of the "
            f"{solver.MAX_ITER} iterations; using {solver.MAX_ITER // 2}"
        )
        solver.WARMUP_ITERS = solver.MAX_ITER // 2
    logger.info(
        f"Schedule: {solver.MAX_ITER} iterations ({solver.MAX_ITER / iters_per_epoch:.2f} epochs of "
        f"{iters_per_epoch} iterations), warmup {solver.WARMUP_ITERS}, lr {scaled_lr(cfg):.4g} "
        f"(base {solver.BASE_LR} x {solver.IMS_PER_BATCH}/{solver.REFERENCE_BATCH_SIZE or solver.IMS_PER_BATCH})"
    )
    cfg.freeze()
    return cfg


def check_lr_steps(cfg) -> None:
    """Refuse WarmupMultiStepLR steps that lie outside the run or out of order (`cfg`: schedule resolved).

    Iterations run 0 .. MAX_ITER - 1 and a step at iteration s lowers the lr from s on, so a step at or
    after MAX_ITER would never change the lr. Which steps are the user's error follows their unit:
    - SOLVER.STEPS (iterations, with SOLVER.EPOCHS 0) must increase within 1 .. MAX_ITER - 1;
    - SOLVER.STEP_EPOCHS (SOLVER.EPOCHS > 0) must increase strictly between 0 and EPOCHS. They are
      fractions of the run: a shorter MAX_ITER moves them proportionally, and a step inside the run
      that a very short MAX_ITER rounds onto iteration 0, onto another step or onto MAX_ITER is not an
      error (build_lr_scheduler applies it at that iteration, or not at all after the end).
    """
    solver = cfg.SOLVER
    if solver.LR_SCHEDULER_NAME != "WarmupMultiStepLR":
        return
    if solver.EPOCHS > 0:
        key, steps, end = "SOLVER.STEP_EPOCHS", tuple(solver.STEP_EPOCHS), solver.EPOCHS
        run = f"SOLVER.EPOCHS = {end}; the run has {solver.MAX_ITER} iterations"
        right = f"Give increasing steps strictly between 0 and {end}"
    else:
        key, steps, end = "SOLVER.STEPS", tuple(solver.STEPS), solver.MAX_ITER
        run = f"SOLVER.MAX_ITER = {end} iterations, 0 .. {end - 1}"
        right = (
            f"Give increasing steps in 1 .. {end - 1}, or the schedule in epochs (SOLVER.EPOCHS, "
            f"SOLVER.STEP_EPOCHS), which a shorter MAX_ITER shortens proportionally"
        )
    for i, step in enumerate(steps):
        if step >= end:
            problem = f"is at or after the end of the run ({run}), so it would never lower the lr"
        elif step <= (steps[i - 1] if i else 0):
            problem = "is not after the step before it" if i else "is at or before the start of the run"
        else:
            continue
        raise ConfigError(f"{key} = {steps} is invalid: step {step} {problem}. {right}")
