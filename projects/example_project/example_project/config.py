"""The project's config keys, added to ssl_lab's defaults before a config file is merged."""

from ssl_lab.config import CfgNode


def add_config(cfg) -> None:
    """MODEL.TARGETLESS: the settings of TargetlessBYOL."""
    cfg.MODEL.TARGETLESS = CfgNode()
    # True: each view's prediction regresses the other view's projection (BYOL's symmetrized loss);
    # False: view 1's prediction regresses view 2's projection only.
    cfg.MODEL.TARGETLESS.SYMMETRIC = True
