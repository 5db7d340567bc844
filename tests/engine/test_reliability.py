"""Killed and preempted runs, corrupt checkpoints, non-finite losses, and property tests of inputs."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssl_lab.config import ConfigError, get_cfg
from ssl_lab.engine import DefaultTrainer, HookBase, SimpleTrainer
from ssl_lab.utils.logger import setup_logger

from conftest import REPO_ROOT, tiny_overrides

MAX_ITER = 6


def _command(shapes_root, out, *extra):
    return [
        sys.executable,
        os.path.join(REPO_ROOT, "tools", "train_net.py"),
        *extra,
        "--config-file",
        os.path.join(REPO_ROOT, "configs/Shapes/mocov2_r18.yaml"),
        *toy_run_overrides(shapes_root, out, MAX_ITER, checkpoint_period=1),
    ]


def toy_run_overrides(shapes_root, out, max_iter: int, checkpoint_period: int):
    """A pinned-seed, deterministic toy MoCo v2 run of `max_iter` iterations without evaluation."""
    # fmt: off
    return [
        *tiny_overrides(shapes_root, out),
        "SOLVER.MAX_ITER", str(max_iter),
        "SOLVER.CHECKPOINT_PERIOD", str(checkpoint_period),
        "DATASETS.TEST", "()",
        "SEED", "7",
        "CUDNN_DETERMINISTIC", "True",
        "MODEL.QUEUE.SIZE", "32",
    ]
    # fmt: on


def _env():
    return {**os.environ, "PYTHONPATH": REPO_ROOT, "OMP_NUM_THREADS": "1"}


def _losses(out):
    """{iteration: total_loss}; a resumed run's later lines replace the killed run's."""
    losses = {}
    with open(os.path.join(out, "metrics.json")) as f:
        for line in f:
            record = json.loads(line)
            if "total_loss" in record:
                losses[record["iteration"]] = record["total_loss"]
    return losses


def _final_weights(out):
    return torch.load(os.path.join(out, "model_final.pth"), weights_only=True)["model"]


def _run_until(cmd, out, iteration, sig, to_group=False):
    """Start `cmd`, send `sig` once metrics.json shows `iteration` (with `to_group`, to its whole
    process group, loader workers included, as SLURM and Ctrl-C do); return the exit code."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=to_group)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(os.path.join(out, "metrics.json")) and iteration in _losses(out):
            if to_group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
            break
        time.sleep(0.05)
    return proc.wait(timeout=240)


@pytest.fixture(scope="module")
def reference_run(shapes_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reference"))
    subprocess.run(_command(shapes_root, out), env=_env(), check=True, capture_output=True, timeout=300)
    return _losses(out), _final_weights(out)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, 3])
def test_sigkill_then_resume_matches_uninterrupted_run_bitwise(shapes_root, tmp_path, reference_run, kill_at):
    out = str(tmp_path / "killed")
    _run_until(_command(shapes_root, out), out, kill_at, signal.SIGKILL)
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
    subprocess.run(_command(shapes_root, out, "--resume"), env=_env(), check=True, capture_output=True, timeout=300)
    ref_losses, ref_weights = reference_run
    assert _losses(out) == ref_losses
    weights = _final_weights(out)
    assert weights.keys() == ref_weights.keys()
    for key, value in ref_weights.items():
        assert torch.equal(weights[key], value), key  # includes the queue, its pointer and the EMA encoder


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_sigterm_saves_a_checkpoint_and_resume_finishes(shapes_root, tmp_path, reference_run, workers):
    # with a loader worker the signal goes to the whole process group, as a scheduler sends it
    out = str(tmp_path / "preempted")
    loader = ["DATALOADER.NUM_WORKERS", str(workers)]
    code = _run_until(_command(shapes_root, out) + loader, out, 2, signal.SIGTERM, to_group=workers > 0)
    assert code == 143
    with open(os.path.join(out, "last_checkpoint")) as f:
        stopped_at = int(f.read().strip()[len("model_") : -len(".pth")])
    assert 2 <= stopped_at < MAX_ITER - 1
    subprocess.run(_command(shapes_root, out, "--resume") + loader, env=_env(), check=True, capture_output=True, timeout=300)
    assert _losses(out) == reference_run[0]


@pytest.mark.slow
def test_a_run_with_a_loader_worker_exits_after_its_final_evaluation(shapes_root, tmp_path):
    # The workers ignore SIGTERM, so multiprocessing's exit handler (terminate, then join) cannot end
    # them: the trainer shuts them down itself, or the process waits on them forever.
    out = str(tmp_path / "out")
    cmd = _command(shapes_root, out) + ["DATASETS.TEST", "('shapes_val',)", "DATALOADER.NUM_WORKERS", "1"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(os.path.join(out, "metrics.json")) as f:
        assert any("knn/top1" in json.loads(line) for line in f)  # the final evaluation ran


@pytest.mark.slow
def test_truncated_newest_checkpoint_falls_back_to_previous(tiny_cfg, caplog):
    cfg = tiny_cfg("configs/Shapes/mocov2_r18.yaml", "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "4")
    setup_logger(cfg.OUTPUT_DIR)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    with open(final, "r+b") as f:
        f.truncate(os.path.getsize(final) // 2)
    cfg.merge_from_list(["SOLVER.MAX_ITER", "6"])
    resumed = DefaultTrainer(cfg)
    with caplog.at_level("ERROR"):
        setup_logger(cfg.OUTPUT_DIR)
        import logging

        logging.getLogger("fvcore").propagate = True
        resumed.resume_or_load(resume=True, allow_config_change=True)  # a longer schedule than the saved run
    assert resumed.start_iter == 4  # model_0000003.pth, the same iteration as the broken final file
    assert any("model_final.pth is corrupt or truncated" in r.getMessage() for r in caplog.records)


class _PoisonWeights(HookBase):
    def before_step(self):
        if self.trainer.iter == 2:
            with torch.no_grad():
                next(self.trainer.model.parameters()).fill_(float("nan"))


@pytest.mark.slow
def test_nan_stops_with_iteration_and_terms_and_keeps_last_good_checkpoint(tiny_cfg):
    cfg = tiny_cfg("configs/Shapes/simclr_r18.yaml", "DATASETS.TEST", "()", "SOLVER.CHECKPOINT_PERIOD", "1")
    setup_logger(cfg.OUTPUT_DIR)
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks([_PoisonWeights()])
    trainer.resume_or_load(resume=False)
    with pytest.raises(FloatingPointError, match=r"iteration 2: loss_contrastive=nan"):
        trainer.train()
    with open(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")) as f:
        assert f.read().strip() == "model_0000001.pth"
    state = torch.load(os.path.join(cfg.OUTPUT_DIR, "model_0000001.pth"), weights_only=True)["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_non_finite_step_can_be_skipped_and_counted():
    class _Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))
            self.calls = 0

        def forward(self, views):
            self.calls += 1
            loss = (self.w * views[0]).sum()
            return {"loss": loss * float("inf") if self.calls == 2 else loss}

    def loader():
        while True:
            yield [torch.ones(1, 2)], torch.zeros(1)

    model = _Model()
    trainer = SimpleTrainer(model, loader(), torch.optim.SGD(model.parameters(), lr=0.5), non_finite_loss="skip")
    trainer.train(0, 3)
    assert trainer.num_skipped_steps == 1
    torch.testing.assert_close(model.w.detach(), torch.zeros(2))  # two of three steps applied
    assert trainer.storage.latest()["non_finite_steps"][0] == 1


def test_unwritable_output_dir_fails_before_training(tiny_cfg, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = tiny_cfg("configs/Shapes/mocov2_r18.yaml", "OUTPUT_DIR", str(blocker / "sub"))
    with pytest.raises(OSError, match="is a file, not a directory"):
        DefaultTrainer(cfg)


# ---------------------------------------------------------------- property tests


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


_NUMERIC_LEAVES = sorted(k for k, v in _leaves(get_cfg()) if type(v) in (int, float))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(_NUMERIC_LEAVES), value=st.integers(-(10**6), 10**6))
def test_merging_a_numeric_value_sets_exactly_that_key(key, value):
    cfg = get_cfg()
    default = dict(_leaves(cfg))
    typed = type(default[key])(value)
    cfg.merge_from_list([key, repr(typed)])
    merged = dict(_leaves(cfg))
    assert merged[key] == typed
    assert {k: v for k, v in merged.items() if k != key} == {k: v for k, v in default.items() if k != key}


@settings(max_examples=60, deadline=None)
@given(key=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_.", min_size=1, max_size=30))
def test_unknown_keys_always_raise_config_error_naming_the_key(key):
    if key in dict(_leaves(get_cfg())) or any(k.startswith(key + ".") for k, _ in _leaves(get_cfg())):
        return
    with pytest.raises(ConfigError) as err:
        get_cfg().merge_from_list([key, "1"])
    assert key in str(err.value)


_RESNET18 = __import__("ssl_lab.modeling.backbones", fromlist=["ResNet"]).ResNet(18).state_dict()
_RESNET18_KEYS = list(_RESNET18)


@settings(max_examples=40, deadline=None)
@given(
    prefix=st.sampled_from(["", "backbone.", "module.encoder_q.", "encoder_q.", "module."]),
    dropped=st.sets(st.sampled_from(_RESNET18_KEYS), max_size=5),
    junk=st.dictionaries(st.text(alphabet="abcxyz._", min_size=1, max_size=12), st.just(0), max_size=3),
)
def test_d2_converter_maps_any_prefixed_resnet_or_fails_clearly(prefix, dropped, junk):
    from ssl_lab.checkpoint.d2_conversion import NoBackboneError, convert_to_d2, extract_backbone_state_dict

    state = {prefix + k: torch.zeros_like(v) for k, v in _RESNET18.items() if k not in dropped}
    state.update({f"head.{k}": torch.zeros(1) for k in junk})
    try:
        _, backbone = extract_backbone_state_dict({"state_dict": state})
    except NoBackboneError as err:
        assert "conv1.weight" in dropped and str(err)  # only when the stem that identifies a ResNet is gone
        return
    converted = convert_to_d2(backbone)
    assert len(converted) == len(backbone)
    assert all(name.startswith(("stem.", "res2.", "res3.", "res4.", "res5.")) for name in converted)
