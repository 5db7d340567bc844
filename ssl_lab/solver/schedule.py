"""The schedule in iterations, from a config given in epochs or iterations."""
import logging

from ssl_lab.config import ConfigError

from .build import scaled_lr

__all__ = ["resolve_schedule"]

logger = logging.getLogger(__name__)


def resolve_schedule(cfg, num_images: int):
    """Fill SOLVER.MAX_ITER / WARMUP_ITERS / STEPS from epochs; return a frozen copy.

    With SOLVER.EPOCHS > 0 the schedule's shape comes from WARMUP_EPOCHS and
    STEP_EPOCHS; its length is EPOCHS * iterations-per-epoch unless MAX_ITER > 0 is
    given, which shortens or stretches every position proportionally.
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
        logger.warning(f"SOLVER.WARMUP_ITERS ({solver.WARMUP_ITERS}) is more than half of the "
                       f"{solver.MAX_ITER} iterations; using {solver.MAX_ITER // 2}")
        solver.WARMUP_ITERS = solver.MAX_ITER // 2
    logger.info(
        f"Schedule: {solver.MAX_ITER} iterations ({solver.MAX_ITER / iters_per_epoch:.2f} epochs of "
        f"{iters_per_epoch} iterations), warmup {solver.WARMUP_ITERS}, lr {scaled_lr(cfg):.4g} "
        f"(base {solver.BASE_LR} x {solver.IMS_PER_BATCH}/{solver.REFERENCE_BATCH_SIZE or solver.IMS_PER_BATCH})"
    )
    cfg.freeze()
    return cfg
