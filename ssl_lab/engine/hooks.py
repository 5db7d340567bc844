"""Hooks: each does one thing around the training loop."""
import logging
import signal
import time

import torch
from fvcore.common.checkpoint import PeriodicCheckpointer as _FvcorePeriodicCheckpointer
from fvcore.common.registry import Registry

from ssl_lab.modeling.momentum import momentum_at
from ssl_lab.utils import comm
from ssl_lab.utils.comm import unwrap_model
from ssl_lab.utils.events import get_event_storage

from .train_loop import HookBase

logger = logging.getLogger(__name__)

HOOK_REGISTRY = Registry("HOOK")
HOOK_REGISTRY.__doc__ = """
Registry for optional hooks named in `cfg.EXTRA_HOOKS`: a registered object is called
as `factory(trainer)` (trainer: a DefaultTrainer with `cfg`) and returns a HookBase.
"""

__all__ = [
    "HOOK_REGISTRY", "IterationTimer", "LRScheduler", "MomentumUpdate", "PeriodicCheckpointer", "PreemptionCheckpointer",
    "PeriodicWriter", "EvalHook",
]


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
        momentum = momentum_at(self.base, self.cosine, self.trainer.iter, self.trainer.max_iter)
        model.momentum_update(momentum)
        get_event_storage().put_scalar("momentum", momentum, smoothing_hint=False)


class PeriodicCheckpointer(_FvcorePeriodicCheckpointer, HookBase):
    """fvcore's PeriodicCheckpointer as a hook: saves every `period` iterations and `model_final`,
    keeping the newest `max_to_keep`."""

    def before_train(self):
        self.max_iter = self.trainer.max_iter

    def after_step(self):
        self.step(self.trainer.iter)


class PreemptionCheckpointer(HookBase):
    """On SIGTERM (preemption), every rank finishes the current iteration, a checkpoint is
    saved, and the process exits with status 143; `--resume` continues from there."""

    def __init__(self, checkpointer):
        self.checkpointer = checkpointer
        self._requested = False

    def _on_sigterm(self, signum, frame):
        logger.warning("SIGTERM received: saving a checkpoint after this iteration, then exiting")
        self._requested = True

    def before_train(self):
        self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)

    def after_step(self):
        requested = torch.tensor(float(self._requested), device=comm.collective_device())
        if comm.get_world_size() > 1:  # stop together: one rank's signal stops all
            requested = comm.all_reduce_mean(requested)
        if requested.item() > 0 and self.trainer.iter < self.trainer.max_iter - 1:
            self.checkpointer.save(f"model_{self.trainer.iter:07d}", iteration=self.trainer.iter)
            comm.synchronize()
            raise SystemExit(143)

    def after_train(self):
        signal.signal(signal.SIGTERM, self._previous_handler)


class PeriodicWriter(HookBase):
    """Runs the event writers (console, metrics.json, TensorBoard) every `period` iterations."""

    def __init__(self, writers, period: int = 20):
        self._writers = writers
        self._period = period

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
