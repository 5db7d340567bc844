from ssl_lab.config import CfgNode as CN


def add_msbreg_config(cfg) -> None:
    """Add the MSBReg keys to `cfg` (in place). Call before merging a config file."""
    cfg.MODEL.MSBREG = CN()
    # lambda_s: weight of the singular-value loss L_S; 0 switches the term off.
    cfg.MODEL.MSBREG.SINGULAR_WEIGHT = 0.004
    # lambda_b: weight of the Brownian diffusive loss L_B; 0 switches the term off.
    cfg.MODEL.MSBREG.BROWNIAN_WEIGHT = 0.5

    # META_ARCHITECTURE "Regularized": another method plus the two regularizers above,
    # applied to the outputs of one of its submodules (its online embeddings).
    cfg.MODEL.REGULARIZED = CN()
    cfg.MODEL.REGULARIZED.META_ARCHITECTURE = "BYOL"
    # Dotted submodule name inside that method, e.g. "predictor" for BYOL.
    cfg.MODEL.REGULARIZED.EMBEDDING_MODULE = "predictor"


add_config = add_msbreg_config  # the name ssl_lab looks for in a package listed in IMPORTS
