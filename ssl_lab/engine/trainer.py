"""DefaultTrainer: builds a run from its config along the one data path, then trains it."""

import logging
import os
import weakref
from dataclasses import dataclass
from typing import Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from ssl_lab.checkpoint import Checkpointer, estimate_checkpoint_bytes
from ssl_lab.checkpoint.backbone_weights import load_backbone_weights
from ssl_lab.config import ConfigError
from ssl_lab.config.checks import check_config
from ssl_lab.data import build_train_dataset, build_train_loader, build_view_normalization
from ssl_lab.data.batched_augment import build_batched_augmentation
from ssl_lab.evaluation import build_evaluators, inference_on_evaluators
from ssl_lab.modeling import build_model
from ssl_lab.solver import build_lr_scheduler, build_optimizer, resolve_schedule
from ssl_lab.utils import comm
from ssl_lab.utils.env import RNGState
from ssl_lab.utils.events import CommonMetricPrinter, JSONWriter, TensorboardWriter
from ssl_lab.utils.logger import start_log_files

from . import hooks
from .online_probe import build_online_probe
from .run_directory import RunDirectory
from .train_loop import AMPTrainer, SimpleTrainer, TrainerBase

__all__ = ["DefaultTrainer", "Run", "assemble", "check_num_classes"]

logger = logging.getLogger("ssl_lab")


def check_num_classes(cfg, dataset) -> None:
    """Linear evaluation: MODEL.CLASSIFIER.NUM_CLASSES must cover every label of the data."""
    if cfg.MODEL.META_ARCHITECTURE != "LinearClassifier":
        return
    labels = getattr(dataset, "labels", None) or getattr(dataset, "targets", None)
    if labels is None or len(labels) == 0:
        return
    num_classes = int(max(labels)) + 1
    if num_classes > cfg.MODEL.CLASSIFIER.NUM_CLASSES:
        raise ConfigError(
            f"MODEL.CLASSIFIER.NUM_CLASSES = {cfg.MODEL.CLASSIFIER.NUM_CLASSES} but the training "
            f"data {tuple(cfg.DATASETS.TRAIN)} has {num_classes} classes; set it to {num_classes}"
        )


@dataclass
class Run:
    """What a run is made of, built from its config by :func:`assemble` (no data, no file)."""

    cfg: object  # frozen, schedule resolved
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    batch_augmentation: Optional[torch.nn.Module]  # the batched views, or the views' normalization, or None


def _create_ddp_model(model):
    if comm.get_world_size() == 1:
        return model
    device_ids = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else None
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


class DefaultTrainer(TrainerBase):
    """Builds everything from `cfg` along the one data path of the framework:

    checks -> dataset -> schedule -> model -> optimizer/scheduler -> checkpointer -> hooks;
    `resume_or_load()` (OUTPUT_DIR not in use, weights loaded, then config.yaml and log.txt
    written) then `train()`. Nothing is written before `resume_or_load` accepts the run.
    Override the `build_*` classmethods to change a part.
    """

    def __init__(self, cfg):
        super().__init__()
        # 1. validate what needs no model: numbers, device, OUTPUT_DIR writable
        check_config(cfg)
        self.run_dir = RunDirectory(cfg.OUTPUT_DIR)
        self.run_dir.check_writable()  # in use or not: decided in resume_or_load
        # 2. build data, schedule, model, optimizer
        self.train_dataset = self.build_train_dataset(cfg)
        check_num_classes(cfg, self.train_dataset)
        run = self.assemble(resolve_schedule(cfg, len(self.train_dataset)))
        self.cfg = cfg = run.cfg
        model, optimizer, self.scheduler = run.model, run.optimizer, run.scheduler
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        extra = {"dtype": cfg.SOLVER.AMP.DTYPE} if cfg.SOLVER.AMP.ENABLED else {}
        self._trainer = trainer_cls(
            _create_ddp_model(model),
            None,
            optimizer,
            non_finite_loss=cfg.SOLVER.NON_FINITE_LOSS,
            grad_accum_steps=cfg.SOLVER.GRAD_ACCUM_STEPS,
            channels_last=cfg.SOLVER.CHANNELS_LAST,
            batch_augmentation=run.batch_augmentation,
            augmentation_seed=max(cfg.SEED, 0),
            log_period=cfg.LOG_PERIOD,
            non_finite_check_period=cfg.SOLVER.NON_FINITE_CHECK_PERIOD,
            **extra,
        )
        self.checkpointer = Checkpointer(
            model,
            cfg.OUTPUT_DIR,
            save_to_disk=comm.is_main_process(),
            optimizer=optimizer,
            trainer=weakref.proxy(self),
            rng=RNGState(),
        )
        if comm.is_main_process():
            self.run_dir.check_free_space(
                estimate_checkpoint_bytes(model, optimizer), cfg.SOLVER.MAX_TO_KEEP, cfg.SOLVER.MAX_ITER // cfg.SOLVER.CHECKPOINT_PERIOD
            )
        # 3. hooks and writers (the writers open their files at their first write)
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.register_hooks(self.build_hooks())

    @property
    def data_loader(self):
        """The iterable of batches `train` runs on; built from `train_dataset` at `train` unless set."""
        return self._trainer.data_loader

    @data_loader.setter
    def data_loader(self, loader):
        self._trainer.data_loader = loader

    @property
    def model(self):
        return self._trainer.model

    @property
    def optimizer(self):
        return self._trainer.optimizer

    def resume_or_load(self, resume: bool = True, allow_config_change: bool = False) -> None:
        """Resume from OUTPUT_DIR's last checkpoint (with --resume), else load MODEL.WEIGHTS.

        OUTPUT_DIR is checked first (see RunDirectory.check): without --resume a folder holding
        checkpoints is refused so they are never overwritten; with it, a config that changes what
        defines the saved run is refused unless `allow_config_change`. Only once the weights are
        loaded does the run write there (its lock, config.yaml, log.txt).
        """
        if comm.is_main_process():  # the folder's owner; other ranks would race with its lock
            self.run_dir.check(self.cfg, resume, allow_config_change)
        if resume and self.run_dir.has_checkpoint():
            checkpoint = self.checkpointer.resume_or_load("", resume=True)
            self.start_iter = checkpoint.get("iteration", -1) + 1
            logger.info(f"Resuming at iteration {self.start_iter}")
        else:
            if resume:
                logger.warning(
                    f"--resume: OUTPUT_DIR '{self.cfg.OUTPUT_DIR}' holds no checkpoint; starting from "
                    f"iteration 0 (check the path if you meant to continue a run)"
                )
            self.load_weights(comm.unwrap_model(self.model), self.cfg.MODEL.WEIGHTS, self.cfg.MODEL.WEIGHTS_ALLOW_PARTIAL)
        if comm.is_main_process():
            self.run_dir.accept(self.cfg)
        else:
            os.makedirs(self.cfg.OUTPUT_DIR, exist_ok=True)
        start_log_files()

    def state_dict(self):
        """The iteration, the hooks' states (the LR scheduler's among them) and the step's state."""
        return {**super().state_dict(), "_trainer": self._trainer.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._trainer.load_state_dict(state.get("_trainer", state))  # older checkpoints: the step's state only

    def train(self):
        if self.start_iter >= self.max_iter:
            logger.info(f"Nothing to do: training already reached iteration {self.max_iter}")
            if self.checkpointer.resumed_past_corrupt:  # the unreadable newest one was model_final: rewrite it
                self.checkpointer.save("model_final", iteration=self.start_iter - 1)
            self.run_dir.release()
            return
        if self.data_loader is None:
            self.data_loader = self.build_train_loader(self.cfg, self.train_dataset, self.start_iter)
        try:
            super().train(self.start_iter, self.max_iter)
        finally:
            self._trainer.shutdown_loader_workers()
            self.run_dir.release()

    def run_step(self):
        self._trainer.iter, self._trainer.max_iter = self.iter, self.max_iter
        self._trainer.run_step()

    def build_hooks(self):
        cfg = self.cfg
        model = comm.unwrap_model(self.model)
        hook_list = [
            hooks.IterationTimer(),
            hooks.LRScheduler(self.optimizer, self.scheduler),
            hooks.MomentumUpdate(cfg.MODEL.MOMENTUM.BASE, cfg.MODEL.MOMENTUM.COSINE) if hasattr(model, "momentum_update") else None,
        ]
        # Before the checkpointers, so that a checkpoint holds their state after this step.
        hook_list += hooks.build_extra_hooks(cfg)
        if cfg.TEST.ONLINE_PROBE.ENABLED:
            hook_list.append(
                build_online_probe(
                    cfg, model.backbone, lambda: getattr(self._trainer, "batch_labels", None), getattr(self, "train_dataset", None)
                )
            )
        # On every rank: saving gathers each rank's RNG state; only the main process writes and prunes.
        hook_list.append(
            hooks.PeriodicCheckpointer(
                self.checkpointer,
                cfg.SOLVER.CHECKPOINT_PERIOD,
                max_iter=self.max_iter,
                max_to_keep=(cfg.SOLVER.MAX_TO_KEEP or None) if comm.is_main_process() else None,
            )
        )
        hook_list.append(hooks.PreemptionCheckpointer(self.checkpointer, period=cfg.LOG_PERIOD))
        evaluators = self.build_evaluators(cfg)
        if evaluators:
            hook_list.append(
                hooks.EvalHook(
                    cfg.TEST.EVAL_PERIOD,
                    lambda: inference_on_evaluators(comm.unwrap_model(self.model), evaluators),
                    eval_at_start=cfg.TEST.EVAL_AT_START,
                )
            )
        hook_list.append(hooks.PeriodicWriter(self.build_writers(), period=cfg.LOG_PERIOD))
        return hook_list

    def build_writers(self):
        if not comm.is_main_process():
            return []
        return [
            CommonMetricPrinter(self.max_iter),
            JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json")),
            TensorboardWriter(self.cfg.OUTPUT_DIR),  # where detectron2 writes events
        ]

    @classmethod
    def assemble(cls, cfg) -> Run:
        """Model, optimizer, LR scheduler and batched augmentation of `cfg` (schedule resolved), by the
        `build_*` classmethods; pure: reads no data, writes no file. On the meta device (under
        `torch.device("meta")`) it costs no memory: the dry run and the job check build the same run."""
        model = cls.build_model(cfg)
        optimizer = cls.build_optimizer(cfg, model)
        return Run(cfg, model, optimizer, cls.build_lr_scheduler(cfg, optimizer), cls.build_batch_augmentation(cfg))

    @classmethod
    def build_train_dataset(cls, cfg):
        return build_train_dataset(cfg)

    @classmethod
    def build_model(cls, cfg):
        model = build_model(cfg)
        if cfg.SOLVER.CHANNELS_LAST:
            model = model.to(memory_format=torch.channels_last)
        if cfg.SOLVER.COMPILE:
            for name in ("backbone", "momentum_backbone"):
                if hasattr(model, name):
                    getattr(model, name).compile()  # in place: parameter names stay the same
        logger.info(
            f"Model: {cfg.MODEL.META_ARCHITECTURE} with {cfg.MODEL.BACKBONE.NAME}-"
            f"{cfg.MODEL.BACKBONE.DEPTH}; {sum(p.numel() for p in model.parameters() if p.requires_grad):,} "
            f"trainable parameters"
        )
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_batch_augmentation(cls, cfg):
        """What the trainer applies on the device to the loader's output: the multi-view augmentation
        with INPUT.BATCHED_AUGMENTATION, else the views' normalization with INPUT.NORMALIZE_ON_DEVICE,
        else None."""
        if cfg.INPUT.BATCHED_AUGMENTATION:
            return build_batched_augmentation(cfg)
        return build_view_normalization(cfg) if cfg.INPUT.NORMALIZE_ON_DEVICE else None

    @classmethod
    def build_train_loader(cls, cfg, dataset, start_iter: int = 0):
        return build_train_loader(cfg, dataset, start_iter)

    @classmethod
    def load_weights(cls, model, path: str, allow_partial: bool = False):
        """Initialize `model` from `path` (file, URL or ssl_lab://name); '' keeps the initialization.

        An ssl_lab checkpoint loads into the matching modules; any other ResNet state
        dict (official MoCo, torchvision, other frameworks) loads into `model.backbone`.
        Returns the ImportReport (None for '').
        """
        return load_backbone_weights(model, path, other_modules=True, allow_partial=allow_partial) if path else None

    @classmethod
    def build_evaluators(cls, cfg):
        """The evaluators of TEST.EVALUATORS (ssl_lab.evaluation.EVALUATOR_REGISTRY) on DATASETS.TEST[0]."""
        return build_evaluators(cfg)

    @classmethod
    def test(cls, cfg, model) -> dict:
        """Evaluate `model` with the configured evaluators; {metric: value}."""
        return inference_on_evaluators(comm.unwrap_model(model), cls.build_evaluators(cfg))


assemble = DefaultTrainer.assemble
