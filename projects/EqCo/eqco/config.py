"""The EqCo project's config keys and the build-time check of the negatives each query sees."""
from typing import Optional

from ssl_lab.config import CfgNode as CN


def add_eqco_config(cfg) -> None:
    """Add the MODEL.EQCO node to `cfg` (in place); no-op if it is there."""
    if "EQCO" in cfg.MODEL:
        return
    cfg.MODEL.EQCO = CN()
    # The K that EqCoLoss mimics: negatives are weighted by ALPHA / K, K read from the tensors.
    cfg.MODEL.EQCO.ALPHA = 65536
    # Log "eqco/mi_bound" = log(ALPHA + 1) - loss (log(K + 1) - loss for InfoNCELoss) every step.
    cfg.MODEL.EQCO.MONITOR_MI_BOUND = True
    # Log "eqco/grad_norm_q", the mean norm of d L_n / d q_n. MoCo-style methods only (queries come
    # from `projector`, keys from a separate momentum encoder); costs three tensor hooks per step.
    cfg.MODEL.EQCO.MONITOR_GRAD_NORM = False


def negatives_per_query(cfg) -> Optional[int]:
    """The K each query of `cfg` sees, checked against the candidates it is drawn from.

    Candidates are the queue (MODEL.QUEUE.SIZE) when there is one, else SimCLR's 2N - 2
    in-batch embeddings (N: the global micro-batch). Returns None when the candidates of the
    meta-architecture are not known here (K is then only known at forward time).
    Raises ValueError for K = 0 or more sampled negatives than candidates.
    """
    if cfg.MODEL.QUEUE.NAME:
        candidates, source = cfg.MODEL.QUEUE.SIZE, f"the queue (MODEL.QUEUE.SIZE = {cfg.MODEL.QUEUE.SIZE})"
    elif cfg.MODEL.META_ARCHITECTURE == "SimCLR":
        n = cfg.SOLVER.IMS_PER_BATCH // cfg.SOLVER.GRAD_ACCUM_STEPS  # one global micro-batch
        candidates = 2 * n - 2
        source = (f"SimCLR's 2N - 2 in-batch embeddings (N = SOLVER.IMS_PER_BATCH / SOLVER.GRAD_ACCUM_STEPS "
                  f"= {cfg.SOLVER.IMS_PER_BATCH} / {cfg.SOLVER.GRAD_ACCUM_STEPS})")
    else:
        return None
    sampler = cfg.MODEL.NEGATIVE_SAMPLER
    k = sampler.NUM_NEGATIVES if sampler.NAME == "RandomNegatives" else candidates
    if k <= 0:
        raise ValueError(f"Each query needs at least one negative; the config gives K = {k} from {source}")
    if k > candidates:
        raise ValueError(
            f"MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES = {k} is more than the {candidates} candidates of {source}; "
            f"the largest valid value is {candidates}"
        )
    return k
