"""Logging at scale: host reads (device syncs on a GPU) only at log periods and non-finite checks,
one metrics.json record per LOG_PERIOD holding the period's means, the same file after a resume."""

import json

import torch
from torch.overrides import TorchFunctionMode

from ssl_lab.engine import HookBase, SimpleTrainer, hooks
from ssl_lab.utils.events import JSONWriter

# Tensor -> host conversions: each one waits for the device when the tensor lives on a GPU.
HOST_READS = {"item", "tolist", "__float__", "__int__", "__bool__", "__index__", "cpu", "numpy"}


class CountHostReads(TorchFunctionMode):
    """A CUDA-free stand-in for torch.cuda.set_sync_debug_mode: counts host reads of tensors by iteration."""

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer
        self.by_iter = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS:
            self.by_iter[self.trainer.iter] = self.by_iter.get(self.trainer.iter, 0) + 1
        return func(*args, **(kwargs or {}))


class _Model(torch.nn.Module):
    """loss_a = w . x, loss_b = 2 (w . x): the losses are the data when w = 1."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, views):
        value = (self.w * views[0]).sum()
        return {"loss_a": value, "loss_b": 2 * value}


def _loader(start: int):
    """Iteration i's batch has w . x = i + 1 (with w = 1)."""
    i = start
    while True:
        yield [torch.tensor([[i + 1.0, 0.0]])], torch.zeros(1)
        i += 1


def _trainer(start=0, **kwargs):
    model = _Model()
    return SimpleTrainer(model, _loader(start), torch.optim.SGD(model.parameters(), lr=0.0), **kwargs)


class _Stop(HookBase):
    """Saves the trainer state after iteration `save_at`, then dies after iteration `die_at` (a kill)."""

    def __init__(self, save_at, die_at):
        self.save_at, self.die_at, self.state = save_at, die_at, None

    def after_step(self):
        if self.trainer.iter == self.save_at:
            self.state = self.trainer.state_dict()
        if self.trainer.iter == self.die_at:
            raise KeyboardInterrupt


def test_host_reads_only_at_log_periods_and_non_finite_checks():
    trainer = _trainer(log_period=10, non_finite_check_period=5)
    trainer.register_hooks([hooks.IterationTimer(), hooks.PreemptionCheckpointer(None, period=10), hooks.PeriodicWriter([], period=10)])
    with CountHostReads(trainer) as counter:
        trainer.train(0, 40)
    # iterations 4, 14, 24, 34: the non-finite check (one read of the queued losses); 9, 19, 29: the
    # log read and the preemption flag; 39 (the last): the log read only.
    expected = {4: 1, 9: 2, 14: 1, 19: 2, 24: 1, 29: 2, 34: 1, 39: 1}
    assert counter.by_iter == expected
    # Before this change every step read each loss (float) plus the preemption flag (item): 4 per step.
    print(f"host reads per step: {sum(counter.by_iter.values()) / 40:.3f}")


def test_metrics_json_has_one_record_per_log_period_with_the_period_means(tmp_path):
    path = tmp_path / "metrics.json"
    trainer = _trainer(log_period=3, non_finite_check_period=100)
    trainer.register_hooks([hooks.PeriodicWriter([JSONWriter(str(path))], period=3)])
    trainer.train(0, 7)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    losses = [{k: r[k] for k in ("iteration", "loss_a", "loss_b", "total_loss")} for r in records]
    # losses 1..7: periods {1,2,3}, {4,5,6}, and the last iteration alone {7}
    assert losses == [
        {"iteration": 2, "loss_a": 2.0, "loss_b": 4.0, "total_loss": 6.0},
        {"iteration": 5, "loss_a": 5.0, "loss_b": 10.0, "total_loss": 15.0},
        {"iteration": 6, "loss_a": 7.0, "loss_b": 14.0, "total_loss": 21.0},
    ]


def test_a_run_resumed_mid_period_writes_the_same_metrics_file(tmp_path):
    def run(path, start=0, state=None, stop=None):
        trainer = _trainer(start, log_period=4, non_finite_check_period=100)
        if state is not None:
            trainer.load_state_dict(state)
        trainer.register_hooks([hooks.PeriodicWriter([JSONWriter(str(path))], period=4), stop])
        try:
            trainer.train(start, 10)
        except KeyboardInterrupt:
            pass

    run(tmp_path / "uninterrupted.json")
    killed = tmp_path / "killed.json"
    stop = _Stop(save_at=5, die_at=8)  # checkpoint mid-period (iterations 4..7), killed after logging 7
    run(killed, stop=stop)
    assert '"iteration": 7' in killed.read_text()  # the killed run wrote past its checkpoint
    run(killed, start=6, state=stop.state)
    assert _without_timings(killed) == _without_timings(tmp_path / "uninterrupted.json")


def _without_timings(path):
    """The records of a metrics file, every value except the wall-clock ones (time, data_time)."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("time")} for r in records]
