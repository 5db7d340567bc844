"""Defaults shared by every entry point: argument parser, run set-up, and DefaultTrainer."""
import argparse
import logging
import os
import shutil
import sys
import weakref

import torch
from torch.nn.parallel import DistributedDataParallel

from ssl_lab.checkpoint import Checkpointer
from ssl_lab.config import ConfigError, config_functions, get_cfg
from ssl_lab.data import build_train_dataset, build_train_loader
from ssl_lab.data.gpu_augment import build_gpu_augmentation
from ssl_lab.evaluation import build_evaluators, inference_on_evaluators
from ssl_lab.model_zoo import load_backbone_weights
from ssl_lab.modeling import build_model
from ssl_lab.utils.device import resolve_device
from ssl_lab.solver import build_lr_scheduler, build_optimizer, scaled_lr
from ssl_lab.utils import comm
from ssl_lab.utils.collect_env import collect_env_info
from ssl_lab.utils.env import RNGState, seed_all_rng, set_deterministic
from ssl_lab.utils.events import CommonMetricPrinter, JSONWriter, TensorboardWriter
from ssl_lab.utils.logger import setup_logger

from . import hooks
from .train_loop import AMPTrainer, SimpleTrainer, TrainerBase

__all__ = ["default_argument_parser", "default_setup", "setup_cfg", "resolve_schedule", "DefaultTrainer"]

logger = logging.getLogger("ssl_lab")


def default_argument_parser(description: str = "ssl_lab training / evaluation") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Examples:\n"
            "  train_net.py --config-file configs/Shapes/mocov2_r18.yaml\n"
            "  train_net.py --config-file cfg.yaml --num-gpus 8 SOLVER.IMS_PER_BATCH 512\n"
            "  train_net.py --config-file cfg.yaml --eval-only MODEL.WEIGHTS output/model_final.pth"
        ),
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to a config file")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last_checkpoint")
    parser.add_argument("--eval-only", action="store_true", help="evaluate MODEL.WEIGHTS and exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="resolve the config, build model/optimizer/schedule/hooks without data, print "
                             "batch, lr, schedule, K, alpha, parameter counts and the recipe row; exit")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per machine (CPU processes without GPUs)")
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0, help="rank of this machine (0 .. num-machines - 1)")
    parser.add_argument("--dist-url", default="auto", help="tcp://host:port of machine 0, or 'auto' on one machine")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. SOLVER.MAX_ITER 100 OUTPUT_DIR out/")
    return parser


def setup_cfg(args, config_fns=()):
    """Defaults (+ `add_config` of the projects in IMPORTS, + `config_fns`) <- config file <- overrides.

    The result is not frozen: DefaultTrainer fills in the schedule first.
    """
    flags = [item for item in args.opts if item.startswith("--")]
    if flags:
        raise ConfigError(f"{flags[0]} comes after the KEY VALUE overrides; put command-line flags before them")
    cfg = get_cfg()
    for add_config in [*config_functions(args.config_file, args.opts), *config_fns]:
        add_config(cfg)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(list(args.opts))
    return cfg


def default_setup(cfg, args) -> None:
    """Logger, the run's first log lines (world size, rank, device), seeding and determinism."""
    rank = comm.get_rank()
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank)
    device = resolve_device(cfg.MODEL.DEVICE)
    if device.type == "cuda" and comm.is_dist():
        device = torch.device("cuda", torch.cuda.current_device())
    logger.info(f"World size: {comm.get_world_size()}  rank: {rank}  device: {device}")
    logger.info(f"Command line: {' '.join(sys.argv)}")
    logger.info("Environment:\n" + collect_env_info())
    if args.config_file:
        logger.info(f"Config file: {args.config_file}")
    if cfg.SEED < 0:  # one fresh seed for weights, data order and augmentation, written to config.yaml
        cfg.SEED = comm.shared_random_seed()
        logger.info(f"SEED -1: drew seed {cfg.SEED}; add 'SEED {cfg.SEED}' to repeat this run")
    seed = seed_all_rng(cfg.SEED + rank)
    logger.info(f"Seed: {seed}")
    set_deterministic(cfg.CUDNN_DETERMINISTIC)
    if not cfg.CUDNN_DETERMINISTIC:
        torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK


def resolve_schedule(cfg, num_images: int):
    """Fill SOLVER.MAX_ITER / WARMUP_ITERS / STEPS from epochs; return a frozen copy.

    With SOLVER.EPOCHS > 0 the schedule's shape comes from WARMUP_EPOCHS and
    STEP_EPOCHS; its length is EPOCHS * iterations-per-epoch unless MAX_ITER > 0 is
    given, which shortens or stretches every position proportionally.
    """
    cfg = cfg.clone()
    cfg.defrost()
    solver = cfg.SOLVER
    iters_per_epoch = num_images // solver.IMS_PER_BATCH
    if iters_per_epoch == 0:
        raise ValueError(
            f"The training set has {num_images} images, fewer than one batch (SOLVER.IMS_PER_BATCH "
            f"= {solver.IMS_PER_BATCH}); lower SOLVER.IMS_PER_BATCH"
        )
    if solver.EPOCHS > 0:
        if solver.MAX_ITER <= 0:
            solver.MAX_ITER = int(solver.EPOCHS * iters_per_epoch)
        per_epoch = solver.MAX_ITER / solver.EPOCHS
        solver.WARMUP_ITERS = int(round(solver.WARMUP_EPOCHS * per_epoch))
        solver.STEPS = tuple(int(round(e * per_epoch)) for e in solver.STEP_EPOCHS)
    elif solver.MAX_ITER <= 0:
        raise ValueError("Set SOLVER.MAX_ITER (iterations) or SOLVER.EPOCHS (epochs) to a positive value")
    if solver.WARMUP_ITERS > solver.MAX_ITER // 2:
        logger.warning(f"SOLVER.WARMUP_ITERS ({solver.WARMUP_ITERS}) is more than half of the "
                       f"{solver.MAX_ITER} iterations; using {solver.MAX_ITER // 2}")
        solver.WARMUP_ITERS = solver.MAX_ITER // 2
    logger.info(
        f"Schedule: {solver.MAX_ITER} iterations ({solver.MAX_ITER / iters_per_epoch:.2f} epochs of "
        f"{iters_per_epoch} iterations), warmup {solver.WARMUP_ITERS}, lr {scaled_lr(cfg):.4g} "
        f"(base {solver.BASE_LR} x {solver.IMS_PER_BATCH}/{solver.REFERENCE_BATCH_SIZE or solver.IMS_PER_BATCH})"
    )
    cfg.freeze()
    return cfg


def _create_ddp_model(model):
    if comm.get_world_size() == 1:
        return model
    device_ids = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else None
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


def check_output_dir(output_dir: str) -> None:
    """Create OUTPUT_DIR and make sure files can be written there, before any work starts."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = os.path.join(output_dir, f".write_test.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise PermissionError(f"OUTPUT_DIR '{output_dir}' is not writable ({err.strerror}); "
                              f"choose another OUTPUT_DIR") from None


def check_free_space(output_dir: str, model, max_to_keep: int) -> None:
    """Fail before training if OUTPUT_DIR cannot hold the checkpoints this run will keep."""
    # weights + optimizer state (e.g. SGD momentum) per checkpoint; final + newest N periodic ones
    per_checkpoint = 2 * sum(t.numel() * t.element_size() for t in model.state_dict().values())
    needed = per_checkpoint * ((max_to_keep or 1) + 2)
    free = shutil.disk_usage(output_dir).free
    if free < needed:
        raise OSError(f"OUTPUT_DIR '{output_dir}' has {free / 2**20:.0f} MiB free but checkpoints need about "
                      f"{needed / 2**20:.0f} MiB; free space or choose another OUTPUT_DIR")


class OutputDirInUseError(RuntimeError):
    """OUTPUT_DIR already holds checkpoints of another run."""


class DefaultTrainer(TrainerBase):
    """Builds everything from `cfg` along the one data path of the framework:

    dataset -> schedule -> model -> optimizer/scheduler -> checkpointer -> hooks;
    `resume_or_load()` then `train()`. Override the `build_*` classmethods to change a part.
    """

    def __init__(self, cfg):
        super().__init__()
        if comm.is_main_process():
            check_output_dir(cfg.OUTPUT_DIR)
        self.train_dataset = self.build_train_dataset(cfg)
        cfg = resolve_schedule(cfg, len(self.train_dataset))
        self.cfg = cfg
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        extra = {"dtype": cfg.SOLVER.AMP.DTYPE} if cfg.SOLVER.AMP.ENABLED else {}
        self._trainer = trainer_cls(_create_ddp_model(model), None, optimizer,
                                    non_finite_loss=cfg.SOLVER.NON_FINITE_LOSS,
                                    grad_accum_steps=cfg.SOLVER.GRAD_ACCUM_STEPS,
                                    channels_last=cfg.SOLVER.CHANNELS_LAST,
                                    batch_augmentation=self.build_batch_augmentation(cfg),
                                    augmentation_seed=max(cfg.SEED, 0), **extra)
        self.checkpointer = Checkpointer(
            model, cfg.OUTPUT_DIR, save_to_disk=comm.is_main_process(), optimizer=optimizer,
            trainer=weakref.proxy(self), rng=RNGState(),
        )
        if comm.is_main_process():
            check_free_space(cfg.OUTPUT_DIR, model, cfg.SOLVER.MAX_TO_KEEP)
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.register_hooks(self.build_hooks())
        if comm.is_main_process():
            with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
                f.write(cfg.dump())
            logger.info(f"Full config saved to {os.path.join(cfg.OUTPUT_DIR, 'config.yaml')}")

    @property
    def model(self):
        return self._trainer.model

    @property
    def optimizer(self):
        return self._trainer.optimizer

    def resume_or_load(self, resume: bool = True) -> None:
        """Resume from OUTPUT_DIR's last checkpoint (with --resume), else load MODEL.WEIGHTS.

        Without --resume, an OUTPUT_DIR that already holds checkpoints is refused so they
        are never overwritten.
        """
        has_checkpoint = self.checkpointer.has_checkpoint()
        if not resume and has_checkpoint:
            raise OutputDirInUseError(
                f"OUTPUT_DIR '{self.cfg.OUTPUT_DIR}' already holds checkpoints (last: "
                f"{self.checkpointer.get_checkpoint_file()}). Pass --resume to continue that run, "
                f"or set OUTPUT_DIR to a new directory."
            )
        if resume and has_checkpoint:
            checkpoint = self.checkpointer.resume_or_load("", resume=True)
            self.start_iter = checkpoint.get("iteration", -1) + 1
            logger.info(f"Resuming at iteration {self.start_iter}")
        else:
            self.load_weights(hooks.unwrap_model(self.model), self.cfg.MODEL.WEIGHTS)

    def state_dict(self):
        """The iteration, the hooks' states (the LR scheduler's among them) and the step's state."""
        return {**super().state_dict(), "_trainer": self._trainer.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._trainer.load_state_dict(state.get("_trainer", state))  # older checkpoints: the step's state only

    def train(self):
        if self.start_iter >= self.max_iter:
            logger.info(f"Nothing to do: training already reached iteration {self.max_iter}")
            return
        self._trainer.data_loader = self.build_train_loader(self.cfg, self.train_dataset, self.start_iter)
        super().train(self.start_iter, self.max_iter)

    def run_step(self):
        self._trainer.iter = self.iter
        self._trainer.run_step()

    def build_hooks(self):
        cfg = self.cfg
        model = hooks.unwrap_model(self.model)
        hook_list = [
            hooks.IterationTimer(),
            hooks.LRScheduler(self.optimizer, self.scheduler),
            hooks.MomentumUpdate(cfg.MODEL.MOMENTUM.BASE, cfg.MODEL.MOMENTUM.COSINE)
            if hasattr(model, "momentum_update") else None,
        ]
        # Before the checkpointers, so that a checkpoint holds their state after this step.
        hook_list += [hooks.HOOK_REGISTRY.get(name)(self) for name in cfg.EXTRA_HOOKS]
        # On every rank: saving gathers each rank's RNG state; only the main process writes and prunes.
        hook_list.append(hooks.PeriodicCheckpointer(
            self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD, max_iter=self.max_iter,
            max_to_keep=(cfg.SOLVER.MAX_TO_KEEP or None) if comm.is_main_process() else None,
        ))
        hook_list.append(hooks.PreemptionCheckpointer(self.checkpointer))
        evaluators = self.build_evaluators(cfg)
        if evaluators:
            hook_list.append(hooks.EvalHook(
                cfg.TEST.EVAL_PERIOD, lambda: inference_on_evaluators(hooks.unwrap_model(self.model), evaluators),
                eval_at_start=cfg.TEST.EVAL_AT_START,
            ))
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
        logger.info(f"Model: {cfg.MODEL.META_ARCHITECTURE} with {cfg.MODEL.BACKBONE.NAME}-"
                    f"{cfg.MODEL.BACKBONE.DEPTH}; {sum(p.numel() for p in model.parameters() if p.requires_grad):,} "
                    f"trainable parameters")
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_batch_augmentation(cls, cfg):
        """The on-device multi-view augmentation with INPUT.GPU_AUGMENTATION, else None."""
        return build_gpu_augmentation(cfg) if cfg.INPUT.GPU_AUGMENTATION else None

    @classmethod
    def build_train_loader(cls, cfg, dataset, start_iter: int = 0):
        return build_train_loader(cfg, dataset, start_iter)

    @classmethod
    def load_weights(cls, model, path: str) -> None:
        """Initialize `model` from `path` (file, URL or ssl_lab://name); '' keeps the initialization.

        An ssl_lab checkpoint loads into the matching modules; any other ResNet state
        dict (official MoCo, torchvision, other frameworks) loads into `model.backbone`.
        """
        if not path:
            return
        checkpointer = Checkpointer(model)
        local_path = checkpointer.path_manager.get_local_path(path)
        if not os.path.isfile(local_path):
            raise FileNotFoundError(f"MODEL.WEIGHTS '{path}' does not exist")
        if "model" in checkpointer._load_file(local_path):
            checkpointer.load(path, checkpointables=[])
        else:
            load_backbone_weights(model, path)

    @classmethod
    def build_evaluators(cls, cfg):
        """The evaluators of TEST.EVALUATORS (ssl_lab.evaluation.EVALUATOR_REGISTRY) on DATASETS.TEST[0]."""
        return build_evaluators(cfg)

    @classmethod
    def test(cls, cfg, model) -> dict:
        """Evaluate `model` with the configured evaluators; {metric: value}."""
        return inference_on_evaluators(hooks.unwrap_model(model), cls.build_evaluators(cfg))
