"""Online linear probe (solo-learn's online classifier): a linear layer trained on the detached
backbone features of the training batches, alongside pretraining, with its own optimizer.

The features are those the method computes anyway: a forward hook on `model.backbone` keeps the
output of its first call in each micro-batch (the global views: all of them for BYOL, SimCLR and
MSBReg, view 1 for MoCo and SiMo, whose other view goes through the momentum encoder), detached,
with the micro-batch's labels repeated once per view. After the optimizer step of the method, the
probe takes one SGD step of its own on them (gradients averaged over ranks): no gradient reaches the
backbone, and neither its weights, its BN statistics nor the global RNG are touched. Every
TEST.EVAL_PERIOD iterations and after training, its top-1 (and top-5) on DATASETS.TEST[0] (the
evaluation transform, backbone in eval mode) go to storage as online_probe/top1 (/top5).
"""

import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import ConfigError
from ssl_lab.data import build_test_loader
from ssl_lab.evaluation.classification import ClassificationEvaluator
from ssl_lab.evaluation.evaluator import inference_on_dataset
from ssl_lab.utils import comm
from ssl_lab.utils.events import get_event_storage

from .train_loop import HookBase

__all__ = ["LinearProbe", "OnlineProbe", "build_online_probe"]


class LinearProbe(nn.Module):
    """A linear classifier (D -> C) with its own SGD: `train_step(features (M, D), labels (M,))`."""

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        init_std: float = 0.01,
        seed: int = 0,
        device="cpu",
    ):
        super().__init__()
        self.fc = nn.Linear(in_dim, num_classes)
        # a private generator: building the probe leaves the global RNG (the run's) where it was
        nn.init.normal_(self.fc.weight, std=init_std, generator=torch.Generator().manual_seed(seed))
        nn.init.zeros_(self.fc.bias)
        self.fc.to(device)
        self.optimizer = torch.optim.SGD(self.fc.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(M, D) -> (M, C) logits."""
        return self.fc(features.float())

    def train_step(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One SGD step of cross-entropy on `features` (detached here) with gradients averaged over
        ranks; label -1 (unlabelled) is ignored, as in solo-learn. Returns the loss (a device scalar,
        not read to the host)."""
        with torch.enable_grad():
            loss = F.cross_entropy(self(features.detach()), labels, ignore_index=-1, reduction="sum")
            loss = loss / (labels >= 0).sum().clamp(min=1)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if comm.get_world_size() > 1:
            for p in self.fc.parameters():
                p.grad = comm.all_reduce_mean(p.grad)
        self.optimizer.step()
        return loss.detach()


class _ProbedBackbone(nn.Module):
    """backbone -> probe, with the `classify(images)` that ClassificationEvaluator calls."""

    def __init__(self, backbone: nn.Module, probe: LinearProbe):
        super().__init__()
        self.backbone, self.probe = backbone, probe

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        return self.probe(self.backbone(images))


class OnlineProbe(HookBase):
    """Trains `probe` on the detached outputs of `backbone` in each training step, with the labels
    `labels()` returns (those of the micro-batch being run); evaluates it with `evaluator` every
    `eval_period` iterations and after a completed run. Its state is checkpointed with the run."""

    def __init__(self, probe: LinearProbe, backbone: nn.Module, labels, evaluator, eval_period: int):
        self.probe = probe
        self.backbone = backbone
        self._labels = labels
        self._evaluator = evaluator
        self._period = eval_period
        self._captured = None  # [(features, labels)] while a training step runs
        self._last_labels = None
        self._handle = None

    def _capture(self, module, inputs, output):
        labels = self._labels() if self._captured is not None and module.training else None
        if labels is None or labels is self._last_labels:  # not training, or not the micro-batch's first call
            return
        self._last_labels = labels
        self._captured.append((output.detach(), labels.repeat(output.shape[0] // labels.shape[0])))

    def before_train(self):
        self._handle = self.backbone.register_forward_hook(self._capture)

    def before_step(self):
        self._captured, self._last_labels = [], None

    def after_step(self):
        captured, self._captured, self._last_labels = self._captured, None, None
        if captured:
            self.probe.train_step(torch.cat([f for f, _ in captured]), torch.cat([y for _, y in captured]))
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0 and next_iter != self.trainer.max_iter:
            self._evaluate()

    def after_train(self):
        self._captured = None
        if self._handle is not None:
            self._handle.remove()
        if self.trainer.iter >= self.trainer.max_iter:  # a completed run, as EvalHook
            self._evaluate()

    def _evaluate(self):
        if self._evaluator is None:
            return
        results = inference_on_dataset(_ProbedBackbone(self.backbone, self.probe), self._evaluator)
        get_event_storage().put_scalars(smoothing_hint=False, **{f"online_probe/{k}": v for k, v in results.items()})

    def state_dict(self):
        return {"fc": self.probe.fc.state_dict(), "optimizer": self.probe.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.probe.fc.load_state_dict(state["fc"])
        self.probe.optimizer.load_state_dict(state["optimizer"])


def build_online_probe(cfg, backbone: nn.Module, labels, train_dataset=None) -> OnlineProbe:
    """The OnlineProbe of cfg.TEST.ONLINE_PROBE on `backbone` (its `out_dim` features), evaluated on
    DATASETS.TEST[0] (not at all without one: a dry run); `labels()` gives the labels of the
    micro-batch being run. The classes are checked against `train_dataset`'s labels."""
    node = cfg.TEST.ONLINE_PROBE
    known = getattr(train_dataset, "labels", None)
    if known is not None and len(known) and int(max(known)) >= node.NUM_CLASSES:
        raise ConfigError(
            f"TEST.ONLINE_PROBE.NUM_CLASSES = {node.NUM_CLASSES} but the training data "
            f"{tuple(cfg.DATASETS.TRAIN)} has {int(max(known)) + 1} classes; set it to {int(max(known)) + 1}"
        )
    probe = LinearProbe(
        backbone.out_dim,
        node.NUM_CLASSES,
        node.BASE_LR,
        node.MOMENTUM,
        node.WEIGHT_DECAY,
        seed=max(cfg.SEED, 0),
        device=next(backbone.parameters()).device,
    )
    evaluator = ClassificationEvaluator(build_test_loader(cfg, cfg.DATASETS.TEST[0])) if cfg.DATASETS.TEST else None
    return OnlineProbe(probe, backbone, labels, evaluator, cfg.TEST.EVAL_PERIOD)
