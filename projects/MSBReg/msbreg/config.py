from ssl_lab.config import CfgNode as CN


def add_msbreg_config(cfg) -> None:
    """Add the MSBReg keys to `cfg` (in place). Call before merging a config file."""
    cfg.MODEL.MSBREG = CN()
    # lambda_s: weight of the singular-value loss L_S; 0 switches the term off.
    cfg.MODEL.MSBREG.SINGULAR_WEIGHT = 0.004
    # 0: L_S as the paper defines it (a sum over the batch). R > 0: L_S scaled by R / N, N the images
    # of one process's batch, so that SINGULAR_WEIGHT has the per-image strength it has at N = R
    # (the paper's batch: 512) whatever the batch; grids over the batch or the views set it.
    cfg.MODEL.MSBREG.SINGULAR_REFERENCE_BATCH = 0
    # lambda_b: weight of the Brownian diffusive loss L_B; 0 switches the term off.
    cfg.MODEL.MSBREG.BROWNIAN_WEIGHT = 0.5

    # META_ARCHITECTURE "Regularized": another method plus the two regularizers above,
    # applied to the outputs of one of its submodules (its online embeddings).
    cfg.MODEL.REGULARIZED = CN()
    cfg.MODEL.REGULARIZED.META_ARCHITECTURE = "BYOL"
    # Dotted submodule name inside that method, e.g. "predictor" for BYOL.
    cfg.MODEL.REGULARIZED.EMBEDDING_MODULE = "predictor"


add_config = add_msbreg_config  # the name ssl_lab looks for in a package listed in IMPORTS
