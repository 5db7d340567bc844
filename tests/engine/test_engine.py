"""Trainer pieces: EMA hook, AMP, hooks order, eval-only and the metrics plot."""

import glob
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from ssl_lab.engine import AMPTrainer, HookBase, MomentumUpdate, SimpleTrainer
from ssl_lab.modeling.momentum import MomentumEncoderMixin, ema_update_, make_momentum_copy, momentum_at

from conftest import REPO_ROOT, assert_linear_eval_keeps_backbone, tiny_overrides


def test_ema_update_moves_parameters_only():
    online = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    target = make_momentum_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
        online[1].running_mean.fill_(5.0)
    before = [p.clone() for p in target.parameters()]
    ema_update_(target, online, 0.9)
    for old, new, src in zip(before, target.parameters(), online.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * src)
    assert target[1].running_mean.abs().sum() == 0


def test_cosine_momentum_goes_from_base_to_one():
    assert momentum_at(0.99, False, 50, 100) == 0.99
    assert momentum_at(0.996, True, 0, 100) == 0.996
    assert math.isclose(momentum_at(0.996, True, 50, 100), 0.998)
    assert math.isclose(momentum_at(0.996, True, 100, 100), 1.0)


class _Online(nn.Module):
    def __init__(self, backbone, projector):
        super().__init__()
        self.backbone, self.projector = backbone, projector


class _OnlineAndTarget(MomentumEncoderMixin, _Online):
    def __init__(self):
        super().__init__(backbone=nn.Linear(4, 3), projector=nn.Linear(3, 2))

    def forward(self, views):
        return {"loss": self.projector(self.backbone(views[0])).pow(2).mean()}


def _flat64(module):
    return torch.cat([p.detach().double().flatten() for p in module.parameters()])


class _RecordEncoders(HookBase):
    """After the EMA hook: (online, target) parameters of backbone + projector, in float64."""

    def __init__(self):
        self.steps = []

    def after_step(self):
        model = self.trainer.model
        self.steps.append(
            (
                _flat64(nn.ModuleList([model.backbone, model.projector])),
                _flat64(nn.ModuleList([model.momentum_backbone, model.momentum_projector])),
            )
        )


def test_momentum_hook_follows_the_cosine_schedule_at_every_iteration():
    torch.manual_seed(0)
    model, base, max_iter = _OnlineAndTarget(), 0.9, 6
    target = _flat64(nn.ModuleList([model.momentum_backbone, model.momentum_projector]))
    trainer = SimpleTrainer(model, _loader(), torch.optim.SGD(model.parameters(), lr=0.5))
    recorder = _RecordEncoders()
    trainer.register_hooks([MomentumUpdate(base, cosine=True), recorder])
    trainer.train(0, max_iter)
    # BYOL (Grill et al. 2020, Sec. 3.2): tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2.
    expected_momenta = [1 - (1 - base) * (math.cos(math.pi * k / max_iter) + 1) / 2 for k in range(max_iter)]
    logged = [value for value, _ in trainer.storage.history("momentum").values]
    assert logged == pytest.approx(expected_momenta, rel=1e-12)
    for m, (online, target_after) in zip(expected_momenta, recorder.steps):
        target = m * target + (1 - m) * online
        torch.testing.assert_close(target_after, target, rtol=1e-6, atol=1e-7)


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, views):
        return {"loss_a": self.linear(views[0]).pow(2).mean(), "loss_b": self.linear(views[1]).abs().mean()}


def _loader():
    while True:
        yield [torch.randn(8, 4), torch.randn(8, 4)], torch.zeros(8)


class _Recorder(HookBase):
    def __init__(self):
        self.calls = []

    def before_train(self):
        self.calls.append("before_train")

    def before_step(self):
        self.calls.append(f"before_step{self.trainer.iter}")

    def after_step(self):
        self.calls.append(f"after_step{self.trainer.iter}")

    def after_train(self):
        self.calls.append("after_train")


def test_trainer_sums_losses_and_calls_hooks_in_order():
    model = _Model()
    trainer = SimpleTrainer(model, _loader(), torch.optim.SGD(model.parameters(), lr=0.1))
    recorder = _Recorder()
    trainer.register_hooks([recorder])
    trainer.train(0, 2)
    assert recorder.calls == ["before_train", "before_step0", "after_step0", "before_step1", "after_step1", "after_train"]
    latest = trainer.storage.latest()
    assert math.isclose(latest["total_loss"][0], latest["loss_a"][0] + latest["loss_b"][0], rel_tol=1e-6)


def test_amp_trainer_bfloat16_on_cpu_updates_weights():
    model = _Model()
    before = model.linear.weight.clone()
    trainer = AMPTrainer(model, _loader(), torch.optim.SGD(model.parameters(), lr=0.1), dtype="bfloat16")
    trainer.train(0, 2)
    assert not torch.equal(before, model.linear.weight)
    assert "grad_scaler" in trainer.state_dict()


def test_non_finite_loss_stops_with_iteration_and_terms():
    class _NaN(_Model):
        def forward(self, views):
            return {"loss_a": torch.tensor(float("nan"), requires_grad=True)}

    model = _NaN()
    trainer = SimpleTrainer(model, _loader(), torch.optim.SGD(model.parameters(), lr=0.1))
    try:
        trainer.train(0, 3)
    except FloatingPointError as err:
        assert "iteration 0" in str(err) and "loss_a=nan" in str(err)
    else:
        raise AssertionError("NaN loss did not stop training")


@pytest.mark.slow
def test_eval_only_and_plot(shapes_root, tmp_path):
    out = str(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    common = [os.path.join(REPO_ROOT, "configs/Shapes/byol_r18.yaml"), *tiny_overrides(shapes_root, out)]
    train = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "tools/train_net.py"),
            "--config-file",
            *common,
            "SOLVER.MAX_ITER",
            "2",
            "TEST.EVAL_AT_START",
            "True",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    assert glob.glob(os.path.join(out, "events.out.tfevents.*"))  # where detectron2 writes them
    evaluate = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "tools/train_net.py"),
            "--eval-only",
            "--config-file",
            *common,
            "MODEL.WEIGHTS",
            os.path.join(out, "model_final.pth"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    with open(os.path.join(out, "log.txt")) as f:
        log = f.read()
    assert log.count("kNN (k=20") == 3  # start, end of training, eval-only
    env_table = log.split("Environment:\n", 1)[1]  # the run logs its environment, as detectron2's collect_env
    assert f"PyTorch         {torch.__version__} @ {os.path.dirname(torch.__file__)}" in env_table
    assert f"CUDA available  {torch.cuda.is_available()}" in env_table
    with open(os.path.join(out, "eval", "results.json")) as f:
        saved = json.load(f)
    logged_top1 = log.rsplit("kNN (k=20", 1)[1].split("top1: ")[1].split()[0]
    assert saved["weights"] == os.path.join(out, "model_final.pth")
    assert f"{saved['results']['knn/top1']:.2f}" == logged_top1  # the log prints 2 decimals
    with open(os.path.join(out, "eval", "config.yaml")) as f:
        assert f"WEIGHTS: {os.path.join(out, 'model_final.pth')}" in f.read()
    plot = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "tools/plot_metrics.py"), out], capture_output=True, text=True, env=env, timeout=120
    )
    assert plot.returncode == 0 and os.path.getsize(os.path.join(out, "metrics.png")) > 10_000


@pytest.mark.slow
def test_linear_eval_trains_fc_only_and_keeps_backbone_and_bn_stats(tiny_cfg, tmp_path):
    from ssl_lab.engine import DefaultTrainer
    from ssl_lab.utils.logger import setup_logger

    pretrain = tiny_cfg(
        "configs/Shapes/mocov2_r18.yaml", "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "1", "OUTPUT_DIR", str(tmp_path / "pre")
    )
    setup_logger(pretrain.OUTPUT_DIR)
    trainer = DefaultTrainer(pretrain)
    trainer.resume_or_load(resume=False)
    trainer.train()
    pretrained = {k: v.clone() for k, v in trainer.model.backbone.state_dict().items()}

    cfg = tiny_cfg(
        "configs/Shapes/linear_eval_r18.yaml",
        "SOLVER.MAX_ITER",
        "3",
        "SOLVER.STEPS",
        "()",
        "OUTPUT_DIR",
        str(tmp_path / "lin"),
        "MODEL.WEIGHTS",
        str(tmp_path / "pre" / "model_final.pth"),
    )
    assert (cfg.INPUT.AUGMENTATION, cfg.INPUT.NUM_VIEWS) == ("LinearEval", 1)
    assert_linear_eval_keeps_backbone(cfg, pretrained)


def test_gradient_accumulation_matches_one_big_batch_for_a_batch_mean_loss():
    class _Mean(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1)

        def forward(self, views):
            return {"loss": self.linear(views[0]).pow(2).mean()}

    torch.manual_seed(0)
    data = torch.randn(8, 4)
    whole, accumulated = _Mean(), _Mean()
    accumulated.load_state_dict(whole.state_dict())

    def loader(chunks):
        while True:
            for chunk in data.chunk(chunks):
                yield [chunk], torch.zeros(len(chunk))

    SimpleTrainer(whole, loader(1), torch.optim.SGD(whole.parameters(), lr=0.1)).train(0, 1)
    trainer = SimpleTrainer(
        accumulated, loader(4), torch.optim.SGD(accumulated.parameters(), lr=0.1), grad_accum_steps=4, channels_last=False
    )
    trainer.train(0, 1)
    for a, b in zip(whole.parameters(), accumulated.parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_speed_options_train(tiny_cfg):
    from ssl_lab.engine import DefaultTrainer

    cfg = tiny_cfg(
        "configs/Shapes/byol_r18.yaml",
        "DATASETS.TEST",
        "()",
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.CHANNELS_LAST",
        "True",
        "SOLVER.GRAD_ACCUM_STEPS",
        "2",
        "SOLVER.AMP.ENABLED",
        "True",
    )
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert trainer.model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer.train_dataset is not None and len(trainer.storage.history("total_loss").values) == 2


def test_json_writer_keeps_every_iteration_between_writes(tmp_path):
    import json

    from ssl_lab.utils.events import EventStorage, JSONWriter

    path = tmp_path / "metrics.json"
    writer = JSONWriter(str(path))
    with EventStorage() as storage:
        storage.put_scalar("knn/top1", 30.0, smoothing_hint=False)  # iteration 0
        storage.iter = 4
        writer.write()
        storage.iter = 5
        storage.put_scalar("knn/top1", 60.0, smoothing_hint=False)
        storage.put_scalar("total_loss", 1.5)
        writer.write()
        writer.write()  # nothing new: nothing repeated
    writer.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [{"iteration": 0, "knn/top1": 30.0}, {"iteration": 5, "knn/top1": 60.0, "total_loss": 1.5}]
