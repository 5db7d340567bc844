"""The BackboneCollapseEval hook: collapse statistics of the backbone beside the kNN results."""
from ssl_lab.data import build_test_loader
from ssl_lab.engine import HOOK_REGISTRY, EvalHook, HookBase
from ssl_lab.engine.hooks import unwrap_model
from ssl_lab.evaluation import extract_features

from .monitor import collapse_stats


def backbone_collapse_stats(backbone, data_loader) -> dict:
    """collapse/backbone_std and collapse/backbone_effective_rank of the backbone's features of a split."""
    features, _ = extract_features(backbone, data_loader, next(backbone.parameters()).device)
    return {f"collapse/backbone_{k}": v for k, v in collapse_stats(features).items()}


@HOOK_REGISTRY.register()
def BackboneCollapseEval(trainer) -> HookBase:  # noqa: N802 (the registered name)
    """The hook of `EXTRA_HOOKS: ["BackboneCollapseEval"]`: backbone_collapse_stats of DATASETS.TEST[0]
    on the kNN evaluation's schedule (every TEST.EVAL_PERIOD, TEST.EVAL_AT_START, after training),
    so both land in the same metrics.json rows. Without a test split it does nothing."""
    cfg = trainer.cfg
    if not cfg.DATASETS.TEST:
        return HookBase()
    loader = build_test_loader(cfg, cfg.DATASETS.TEST[0])
    return EvalHook(cfg.TEST.EVAL_PERIOD, lambda: backbone_collapse_stats(unwrap_model(trainer.model).backbone, loader),
                    eval_at_start=cfg.TEST.EVAL_AT_START)
