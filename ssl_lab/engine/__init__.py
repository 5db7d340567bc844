from .defaults import DefaultTrainer, default_argument_parser, default_setup, resolve_schedule, setup_cfg
from .hooks import HOOK_REGISTRY, EvalHook, IterationTimer, LRScheduler, MomentumUpdate, PeriodicCheckpointer, PeriodicWriter
from .launch import launch
from .train_loop import AMPTrainer, HookBase, NonFiniteLossError, SimpleTrainer, TrainerBase

__all__ = [k for k in dict(globals()) if not k.startswith("_")]
