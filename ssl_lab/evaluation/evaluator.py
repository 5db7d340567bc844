"""The evaluator protocol (detectron2's DatasetEvaluator, adapted to labelled image splits)."""

import logging

import torch

from ssl_lab.config import ConfigError

logger = logging.getLogger(__name__)


class DatasetEvaluator:
    """Evaluates a model on one labelled split, in three steps that `inference_on_dataset` drives:

    - `reset(model)`: before the split (forget earlier results; e.g. extract a kNN memory bank);
    - `process(model, images, labels)`: for each batch of this rank's share of `data_loader`
      (images (N, 3, H, W) on the model's device, labels (N,));
    - `evaluate()` -> {metric: float}: combines the shares of all ranks. Every rank calls it
      (it may be a collective) and gets the same dict.
    """

    def __init__(self, data_loader):
        self.data_loader = data_loader

    def reset(self, model) -> None:
        pass

    def process(self, model, images: torch.Tensor, labels: torch.Tensor) -> None:
        raise NotImplementedError

    def evaluate(self) -> dict:
        raise NotImplementedError


@torch.no_grad()
def inference_on_dataset(model, evaluator: DatasetEvaluator) -> dict:
    """Run `evaluator` over its split with `model` in eval mode (its mode is restored after)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        evaluator.reset(model)
        for images, labels in evaluator.data_loader:
            evaluator.process(model, images.to(device), torch.as_tensor(labels))
    finally:
        model.train(was_training)
    return evaluator.evaluate()


def inference_on_evaluators(model, evaluators) -> dict:
    """The merged results of several evaluators; two that report the same metric name are an error."""
    results = {}
    for evaluator in evaluators:
        result = inference_on_dataset(model, evaluator)
        clash = set(result) & set(results)
        if clash:
            raise ConfigError(f"{type(evaluator).__name__} reports {sorted(clash)}, which another evaluator in TEST.EVALUATORS reports too")
        results.update(result)
    return results
