"""The EqCo project's config keys and the build-time check of the negatives each query sees."""

from typing import Optional

from ssl_lab.config import CfgNode as CN
from ssl_lab.modeling.meta_arch import META_ARCH_REGISTRY, ContrastiveMethod


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

    The meta-architecture says where its candidates come from (`negative_candidates`, e.g. the
    queue or the in-batch embeddings). Returns None for a method that is not contrastive (K is then
    only known at forward time). Raises ValueError for K = 0 or more sampled negatives than candidates.
    """
    method = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    if not (isinstance(method, type) and issubclass(method, ContrastiveMethod)):
        return None
    return method.negatives_per_query(cfg)
