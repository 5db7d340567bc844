from ssl_lab.solver import resolve_schedule  # kept importable from here

from .defaults import default_argument_parser, default_setup, setup_cfg
from .hooks import (
    HOOK_REGISTRY,
    build_extra_hooks,
    EvalHook,
    IterationTimer,
    LRScheduler,
    MomentumUpdate,
    PeriodicCheckpointer,
    PeriodicWriter,
)
from .launch import launch
from .run_directory import OutputDirError, OutputDirInUseError, ResumeConfigError, RunDirectory
from .train_loop import AMPTrainer, HookBase, NonFiniteLossError, SimpleTrainer, TrainerBase
from .trainer import DefaultTrainer, Run, assemble
from .validate import validate

__all__ = [k for k in dict(globals()) if not k.startswith("_")]
