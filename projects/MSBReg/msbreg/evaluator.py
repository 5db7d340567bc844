"""The BackboneCollapse evaluator: collapse statistics of the backbone beside the kNN results."""

import torch

from ssl_lab.data import build_test_loader
from ssl_lab.evaluation import EVALUATOR_REGISTRY, DatasetEvaluator
from ssl_lab.utils import comm

from .monitor import collapse_stats


class BackboneCollapseEvaluator(DatasetEvaluator):
    """collapse/backbone_std and collapse/backbone_effective_rank of the backbone's features of a split."""

    def reset(self, model):
        self._features = []

    def process(self, model, images, labels):
        self._features.append(getattr(model, "backbone", model)(images).float().cpu())

    def evaluate(self) -> dict:
        features = torch.cat(comm.all_gather_object(torch.cat(self._features)))
        return {f"collapse/backbone_{k}": float(v) for k, v in collapse_stats(features).items()}


@EVALUATOR_REGISTRY.register()
def BackboneCollapse(cfg):  # noqa: N802 (the registered name)
    """`TEST.EVALUATORS: ["KNN", "BackboneCollapse"]`: the statistics of DATASETS.TEST[0], on the kNN
    evaluation's schedule, so both land in the same metrics.json rows."""
    return BackboneCollapseEvaluator(build_test_loader(cfg, cfg.DATASETS.TEST[0]))
