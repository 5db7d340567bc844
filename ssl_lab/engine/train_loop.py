"""The training loop: a trainer that runs steps and calls hooks around them.

The trainer knows nothing about models or methods: a step is "get a batch, call
the model, sum its losses, backward, optimizer step". Everything else
(schedules, EMA, checkpoints, logging, evaluation) is a hook.
"""

import contextlib
import inspect
import logging
import math
import time
import weakref

import torch
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

from ssl_lab.config import ConfigError
from ssl_lab.utils import comm
from ssl_lab.utils.errors import UserError
from ssl_lab.utils.events import EventStorage, get_event_storage

logger = logging.getLogger(__name__)


class HookBase:
    """A callback around training. `self.trainer` is set (weakly) when registered.

    Called in order: before_train, then for each iteration before_step /
    after_step, then after_train (also after an exception).
    """

    trainer = None

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_step(self):
        pass

    def after_step(self):
        pass

    def state_dict(self):
        """Hooks with state (e.g. a scheduler) return it here; the trainer checkpoints it
        under the hook's class name and hands it back to `load_state_dict` on resume."""
        return {}

    def load_state_dict(self, state):
        pass


class TrainerBase:
    """Iterates from `start_iter` to `max_iter`, calling `run_step` and the hooks."""

    def __init__(self):
        self._hooks = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.storage = None

    def register_hooks(self, hooks):
        for h in hooks:
            if h is None:
                continue
            h.trainer = weakref.proxy(self)
            self._hooks.append(h)

    def train(self, start_iter: int, max_iter: int):
        logger.info(f"Starting training from iteration {start_iter}")
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        with EventStorage(start_iter) as self.storage:
            try:
                self.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.before_step()
                    self.run_step()
                    self.after_step()
                self.iter += 1  # after a complete run, trainer.iter == max_iter
            finally:
                self.after_train()

    def before_train(self):
        for h in self._hooks:
            h.before_train()

    def after_train(self):
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_step(self):
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_step()

    def after_step(self):
        for h in self._hooks:
            h.after_step()

    def run_step(self):
        raise NotImplementedError

    def state_dict(self):
        """The iteration and, under "hooks", each stateful hook's state by class name."""
        state = {"iteration": self.iter}
        hooks_state = {}
        for h in self._hooks:
            hook_state = h.state_dict()
            if hook_state:
                name = type(h).__qualname__
                if name in hooks_state:
                    logger.warning(f"Only the first of several {name} hooks has its state checkpointed")
                    continue
                hooks_state[name] = hook_state
        if hooks_state:
            state["hooks"] = hooks_state
        return state

    def load_state_dict(self, state):
        self.iter = state["iteration"]
        by_name = {}
        for h in self._hooks:  # the first hook of each class, as in state_dict
            by_name.setdefault(type(h).__qualname__, h)
        for name, hook_state in state.get("hooks", {}).items():
            if name in by_name:
                by_name[name].load_state_dict(hook_state)
            else:
                logger.warning(f"The checkpoint holds the state of hook {name}, which this run does not have; it is ignored")


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN or Inf."""


class SimpleTrainer(TrainerBase):
    """One optimizer step per iteration on `grad_accum_steps` micro-batches from `data_loader`.

    The model maps `views` (list of (N, 3, H, W)) to a dict of scalars: the losses (keys starting with
    "loss", summed) and metrics to log (any other key); a model
    whose forward has a `labels` parameter (e.g. linear evaluation) also gets the labels (N,).
    With `batch_augmentation` (a :class:`ssl_lab.data.batched_augment.BatchedMultiView`) the loader
    yields uint8 images (N, 3, H, W) instead, and the views are made on the model's device under
    a generator seeded by (`augmentation_seed`, iteration, micro-batch, rank); a
    :class:`ssl_lab.data.transforms.ViewNormalization` normalizes uint8 views on the device.
    Losses stay on the device until a log period (`log_period`) or a non-finite check
    (`non_finite_check_period`), where the storage gets their means over the period.
    """

    def __init__(
        self,
        model,
        data_loader,
        optimizer,
        non_finite_loss: str = "error",
        grad_accum_steps: int = 1,
        channels_last: bool = False,
        batch_augmentation=None,
        augmentation_seed: int = 0,
        log_period: int = 1,
        non_finite_check_period: int = 1,
    ):
        super().__init__()
        if non_finite_loss not in ("error", "skip"):
            raise ConfigError(f"SOLVER.NON_FINITE_LOSS must be 'error' or 'skip', got '{non_finite_loss}'")
        self.non_finite_loss = non_finite_loss
        self.num_skipped_steps = 0
        if log_period < 1 or non_finite_check_period < 1:
            raise ConfigError(f"LOG_PERIOD ({log_period}) and SOLVER.NON_FINITE_CHECK_PERIOD ({non_finite_check_period}) must be >= 1")
        self.log_period = log_period
        self.non_finite_check_period = non_finite_check_period
        self._unread = []  # (iteration, (L,) rank-averaged losses on the device), not yet read to the host
        self._period = []  # (iteration, [L floats], data_time) read since the last log
        self.grad_accum_steps = grad_accum_steps
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if batch_augmentation is not None:
            batch_augmentation = batch_augmentation.to(next(model.parameters()).device)
        self.batch_augmentation = batch_augmentation
        self.augmentation_seed = augmentation_seed
        model.train()
        self.model = model
        self._is_ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
        inner = comm.unwrap_model(model)
        self._pass_labels = "labels" in inspect.signature(inner.forward).parameters
        self.data_loader = data_loader
        self._data_iter = None
        self.optimizer = optimizer

    @property
    def data_iter(self):
        if self._data_iter is None:
            self._data_iter = iter(self.data_loader)
        return self._data_iter

    def shutdown_loader_workers(self) -> None:
        """Stop the training loader's worker processes. They ignore SIGTERM
        (`ssl_lab.data.build.ignore_stop_signals`), so multiprocessing's exit handler, which
        terminates and then joins every child still alive, would wait forever on workers of a
        loader that is still referenced when the interpreter exits. The next `data_iter` starts
        new workers."""
        if isinstance(self._data_iter, _MultiProcessingDataLoaderIter):
            self._data_iter._shutdown_workers()  # torch's own shutdown, as PyTorch Lightning calls it
        if isinstance(self.data_loader, DataLoader):
            self.data_loader._iterator = None  # the persistent-workers iterator the loader keeps
        self._data_iter = None

    def _load_batch(self, micro: int = 0):
        start = time.perf_counter()
        views, labels = next(self.data_iter)
        device = next(self.model.parameters()).device
        if self.batch_augmentation is not None:
            moved = [v.to(device, non_blocking=True) for v in views] if isinstance(views, list) else views.to(device, non_blocking=True)
            views = self.batch_augmentation(moved, self._augmentation_generator(micro))
        batch = {"views": [v.to(device, non_blocking=True, memory_format=self._memory_format) for v in views]}
        self.batch_labels = labels.to(device, non_blocking=True)  # this micro-batch's, for hooks (online probe)
        if self._pass_labels:
            batch["labels"] = self.batch_labels
        return batch, time.perf_counter() - start

    def _augmentation_generator(self, micro: int) -> torch.Generator:
        """CPU generator of the batched augmentation of micro-batch `micro` of this iteration on
        this rank: the views depend only on the position in the run, as on the PIL path."""
        stream = (self.iter * self.grad_accum_steps + micro) * comm.get_world_size() + comm.get_rank()
        return torch.Generator().manual_seed(self.augmentation_seed * 1_000_003 + stream)

    def _losses(self, batch):
        """The model's dict: the terms whose key starts with "loss" are summed into the total; the
        others are metrics (e.g. statistics of the embeddings), logged only."""
        loss_dict = self.model(**batch)
        return sum(v for k, v in loss_dict.items() if k.startswith("loss")), loss_dict

    def run_step(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss_dicts, data_time = [], 0.0
        for micro in range(self.grad_accum_steps):
            batch, seconds = self._load_batch(micro)
            data_time += seconds
            last = micro == self.grad_accum_steps - 1
            # DDP all-reduces gradients only on the last micro-batch.
            with contextlib.nullcontext() if last or not self._is_ddp else self.model.no_sync():
                with self._autocast():
                    total, loss_dict = self._losses(batch)
                self._backward(total / self.grad_accum_steps)
            loss_dicts.append({k: v.detach() for k, v in loss_dict.items()})
        loss_dict = {k: sum(d[k] for d in loss_dicts) / len(loss_dicts) for k in loss_dicts[0]}
        if self._write_metrics(loss_dict, data_time):
            self._optimizer_step()

    def _autocast(self):
        return contextlib.nullcontext()

    def _backward(self, loss):
        loss.backward()

    def _optimizer_step(self):
        self.optimizer.step()

    def _write_metrics(self, loss_dict, data_time: float) -> bool:
        """Queue this step's losses (averaged over ranks) on the device; False if the step must be
        skipped (non-finite loss with non_finite_loss="skip").

        The host reads them (one device sync) only at log periods, every `non_finite_check_period`
        iterations, and on every step with "skip" (which must decide before the update). At a log
        period the storage gets each loss's mean over the period's iterations.
        """
        reduced = comm.reduce_dict(loss_dict)
        self._loss_names = sorted(reduced)
        self._unread.append((self.iter, torch.stack([reduced[k].detach().float() for k in self._loss_names])))
        self._period.append((self.iter, None, data_time))
        last = self.iter == self.max_iter - 1
        log_now = (self.iter + 1) % self.log_period == 0 or last
        if log_now or self.non_finite_loss == "skip" or (self.iter + 1) % self.non_finite_check_period == 0:
            if not self._read_losses():
                return False
        if log_now:
            self._log_period_means()
        return True

    def _read_losses(self) -> bool:
        """Read the queued losses to the host (one sync); on a non-finite one raise ("error") or
        drop this step from the period and return False ("skip")."""
        values = torch.stack([v for _, v in self._unread]).tolist()
        read = dict(zip((it for it, _ in self._unread), values))
        self._unread = []
        self._period = [(it, read.get(it, losses), t) for it, losses, t in self._period]
        for it, losses, _ in self._period:
            if all(math.isfinite(v) for k, v in zip(self._loss_names, losses) if k.startswith("loss")):
                continue
            terms = ", ".join(f"{k}={v}" for k, v in zip(self._loss_names, losses))
            if self.non_finite_loss == "error":
                raise NonFiniteLossError(f"Loss became non-finite at iteration {it}: {terms}")
            self._period.pop()  # "skip" reads every step: only this one can be non-finite
            self.num_skipped_steps += 1
            logger.warning(f"Skipping iteration {it}, non-finite loss ({terms}); {self.num_skipped_steps} skipped so far")
            get_event_storage().put_scalar("non_finite_steps", self.num_skipped_steps, smoothing_hint=False)
            return False
        return True

    def _log_period_means(self):
        """Put each loss's and metric's (and total_loss's, data_time's) mean over this log period into storage."""
        if not self._period:
            return
        rows = [losses for _, losses, _ in self._period]
        means = {k: sum(row[j] for row in rows) / len(rows) for j, k in enumerate(self._loss_names)}
        storage = get_event_storage()
        storage.put_scalar("data_time", sum(t for _, _, t in self._period) / len(rows), smoothing_hint=False)
        is_loss = [k.startswith("loss") for k in self._loss_names]
        total = sum(sum(v for v, counted in zip(row, is_loss) if counted) for row in rows) / len(rows)
        storage.put_scalar("total_loss", total, smoothing_hint=False)
        storage.put_scalars(smoothing_hint=False, **means)
        self._period = []

    def state_dict(self):
        """Includes the losses of the unfinished log period, so a resumed run logs the same means."""
        if self._unread:
            self._read_losses()  # a checkpoint holds no unchecked non-finite loss
        period = [[it, losses, t] for it, losses, t in self._period]
        return {
            **super().state_dict(),
            "num_skipped_steps": self.num_skipped_steps,
            "log_period": period,
            "loss_names": list(getattr(self, "_loss_names", [])),
        }

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.num_skipped_steps = state.get("num_skipped_steps", 0)
        self._period = [tuple(row) for row in state.get("log_period", [])]
        if state.get("loss_names"):
            self._loss_names = list(state["loss_names"])
        self._unread = []


class AMPTrainer(SimpleTrainer):
    """SimpleTrainer under torch.autocast: bfloat16 (CPU or CUDA) or float16 with grad scaling (CUDA)."""

    def __init__(self, model, data_loader, optimizer, dtype: str = "bfloat16", **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        device = next(model.parameters()).device
        if dtype not in ("bfloat16", "float16"):
            raise ConfigError(f"SOLVER.AMP.DTYPE must be 'bfloat16' or 'float16', got '{dtype}'")
        if dtype == "float16" and device.type != "cuda":
            raise ConfigError("SOLVER.AMP.DTYPE float16 needs CUDA; use bfloat16 on CPU")
        self.device_type = device.type
        self.dtype = getattr(torch, dtype)
        self.grad_scaler = torch.amp.GradScaler(device.type, enabled=dtype == "float16")

    def _autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype)

    def _backward(self, loss):
        self.grad_scaler.scale(loss).backward()

    def _optimizer_step(self):
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()

    def state_dict(self):
        return {**super().state_dict(), "grad_scaler": self.grad_scaler.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])
