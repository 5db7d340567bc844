"""Hooks: each does one thing around the training loop."""

import glob
import logging
import os
import signal
import time

import torch
from fvcore.common.checkpoint import PeriodicCheckpointer as _FvcorePeriodicCheckpointer

from ssl_lab.modeling.momentum import momentum_at
from ssl_lab.utils import comm
from ssl_lab.utils.comm import unwrap_model
from ssl_lab.utils.events import get_event_storage
from ssl_lab.utils.registry import Registry

from .train_loop import HookBase

logger = logging.getLogger(__name__)

HOOK_REGISTRY = Registry("HOOK")
HOOK_REGISTRY.__doc__ = """
Registry for optional hooks named in `cfg.EXTRA_HOOKS`. An entry is called as `entry(cfg)` and
returns a HookBase (a HookBase class with a `@configurable __init__`, or a function); the trainer
it is registered with is its `self.trainer` from `before_train` on.
"""

__all__ = [
    "HOOK_REGISTRY",
    "build_extra_hooks",
    "IterationTimer",
    "LRScheduler",
    "MomentumUpdate",
    "PeriodicCheckpointer",
    "PreemptionCheckpointer",
    "PeriodicWriter",
    "EvalHook",
]


def build_extra_hooks(cfg) -> list:
    """The hooks named in `cfg.EXTRA_HOOKS`, in that order."""
    return [HOOK_REGISTRY.get(name)(cfg) for name in cfg.EXTRA_HOOKS]


class IterationTimer(HookBase):
    """Puts the wall time of each step into storage as "time"; logs the total at the end."""

    def before_train(self):
        self._train_start = time.perf_counter()

    def before_step(self):
        self._step_start = time.perf_counter()

    def after_step(self):
        get_event_storage().put_scalar("time", time.perf_counter() - self._step_start)

    def after_train(self):
        steps = self.trainer.iter - self.trainer.start_iter
        total = time.perf_counter() - self._train_start
        if steps > 0:
            logger.info(f"Total training time: {total:.1f} s for {steps} iterations ({total / steps:.4f} s / it)")


class LRScheduler(HookBase):
    """Steps the LR scheduler after every iteration and logs the learning rate as "lr"."""

    def __init__(self, optimizer, scheduler):
        self._optimizer = optimizer
        self.scheduler = scheduler

    def after_step(self):
        get_event_storage().put_scalar("lr", self._optimizer.param_groups[0]["lr"], smoothing_hint=False)
        self.scheduler.step()

    def state_dict(self):
        return self.scheduler.state_dict()

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state)


class MomentumUpdate(HookBase):
    """EMA update of the key/target encoder after each optimizer step (constant or cosine momentum)."""

    def __init__(self, base: float, cosine: bool):
        self.base = base
        self.cosine = cosine

    def after_step(self):
        model = unwrap_model(self.trainer.model)
        iteration = self.trainer.iter + getattr(model, "MOMENTUM_ITERATION_OFFSET", 0)
        momentum = momentum_at(self.base, self.cosine, iteration, self.trainer.max_iter)
        model.momentum_update(momentum)
        get_event_storage().put_scalar("momentum", momentum, smoothing_hint=False)


class PeriodicCheckpointer(_FvcorePeriodicCheckpointer, HookBase):
    """fvcore's PeriodicCheckpointer as a hook: saves every `period` iterations and `model_final`,
    keeping the newest `max_to_keep`."""

    def before_train(self):
        self.max_iter = self.trainer.max_iter
        # a resumed run also rotates the periodic checkpoints of the runs before it
        saved = sorted(glob.glob(os.path.join(glob.escape(self.checkpointer.save_dir), "model_[0-9]*.pth")))
        self.recent_checkpoints = saved + [p for p in self.recent_checkpoints if p not in saved]
        while self.max_to_keep is not None and len(self.recent_checkpoints) > self.max_to_keep:
            os.remove(self.recent_checkpoints.pop(0))

    def after_step(self):
        self.step(self.trainer.iter)


class PreemptionCheckpointer(HookBase):
    """On SIGTERM (preemption) or SIGINT (Ctrl-C), every rank stops at the next check, a
    checkpoint is saved, and the process exits with 128 + the signal number (143, 130);
    `--resume` continues from there.

    The flag is all-reduced (one rank's signal stops all) and read only every `period` iterations
    (LOG_PERIOD: the host reads the losses then anyway), not on every step: at ImageNet speed
    (about 0.3 s per step) 20 iterations stay well inside a scheduler's grace period (30 s or more).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, checkpointer, period: int = 1):
        self.checkpointer = checkpointer
        self.period = period
        self._requested = 0
        self._previous_handlers = {}

    def _on_signal(self, signum, frame):
        logger.warning(f"{signal.Signals(signum).name} received: saving a checkpoint after this iteration, then exiting")
        self._requested = self._requested or signum

    def before_train(self):
        self._previous_handlers = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}

    def after_step(self):
        if (self.trainer.iter + 1) % self.period != 0 or self.trainer.iter >= self.trainer.max_iter - 1:
            return
        requested = torch.tensor(float(self._requested), device=comm.collective_device())
        if comm.get_world_size() > 1:  # stop together: one rank's signal stops all
            requested = comm.all_reduce_mean(requested)
        if requested.item() > 0:
            signum = self._requested or int(signal.SIGTERM)
            self.checkpointer.save(f"model_{self.trainer.iter:07d}", iteration=self.trainer.iter)
            comm.synchronize()
            raise SystemExit(128 + signum)

    def after_train(self):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)


class PeriodicWriter(HookBase):
    """Runs the event writers (console, metrics.json, TensorBoard) every `period` iterations."""

    def __init__(self, writers, period: int = 20):
        self._writers = writers
        self._period = period

    def before_train(self):
        for writer in self._writers:
            writer.before_train(self.trainer.start_iter)

    def after_step(self):
        if (self.trainer.iter + 1) % self._period == 0 or self.trainer.iter == self.trainer.max_iter - 1:
            for writer in self._writers:
                writer.write()

    def after_train(self):
        for writer in self._writers:
            writer.write()
            writer.close()


class EvalHook(HookBase):
    """Runs `eval_function() -> {name: float}` every `period` iterations, after training,
    and optionally before training (the random-init baseline). Results go to storage."""

    def __init__(self, period: int, eval_function, eval_at_start: bool = False):
        self._period = period
        self._func = eval_function
        self._eval_at_start = eval_at_start

    def _do_eval(self):
        results = self._func()
        if results:
            get_event_storage().put_scalars(smoothing_hint=False, **results)
        comm.synchronize()

    def before_train(self):
        if self._eval_at_start and self.trainer.iter == 0:
            self._do_eval()

    def after_step(self):
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0 and next_iter != self.trainer.max_iter:
            self._do_eval()

    def after_train(self):
        # Evaluate at the end of a completed run only (not after a crash).
        if self.trainer.iter >= self.trainer.max_iter:
            self._do_eval()
