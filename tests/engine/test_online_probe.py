"""The online linear probe (TEST.ONLINE_PROBE): it learns separable features, leaves the backbone's
gradients bitwise unchanged, logs online_probe/top1, and resumes."""

import json
import os

import pytest
import torch

from ssl_lab.data import build_test_loader
from ssl_lab.engine import DefaultTrainer
from ssl_lab.engine.online_probe import LinearProbe, OnlineProbe, _ProbedBackbone
from ssl_lab.evaluation.classification import ClassificationEvaluator
from ssl_lab.evaluation.evaluator import inference_on_dataset
from ssl_lab.utils.logger import setup_logger

from resume_testing import _cfg, _kill_and_resume, _reseed

PROBE = ("TEST.ONLINE_PROBE.ENABLED", "True", "TEST.ONLINE_PROBE.NUM_CLASSES", "6", "TEST.EVAL_PERIOD", "2")


def test_probe_reaches_100_percent_on_linearly_separable_features():
    """Reference: the labels the features were drawn from (class k around 3 e_k, spread 0.3)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(5).repeat(40)
    features = 3 * torch.eye(16)[labels] + 0.3 * torch.randn(200, 16, generator=g)
    probe = LinearProbe(16, 5, lr=0.5)
    before = (probe(features).argmax(1) == labels).float().mean().item()
    for _ in range(100):
        probe.train_step(features, labels)
    assert before < 0.5
    assert torch.equal(probe(features).argmax(1), labels)


def test_probe_ignores_unlabelled_samples():
    """Label -1 contributes nothing: the step equals a step on the labelled rows alone."""
    g = torch.Generator().manual_seed(1)
    features, labels = torch.randn(6, 4, generator=g), torch.tensor([0, 1, -1, 2, -1, 0])
    probes = [LinearProbe(4, 3, lr=0.1, seed=3) for _ in range(2)]
    probes[0].train_step(features, labels)
    probes[1].train_step(features[labels >= 0], labels[labels >= 0])
    assert torch.allclose(probes[0].fc.weight, probes[1].fc.weight, atol=1e-7)


def _train(cfg):
    setup_logger(cfg.OUTPUT_DIR)
    _reseed(0)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return trainer


@pytest.mark.slow
def test_probe_leaves_the_backbone_bitwise_unchanged_and_logs_its_top1(shapes_root, tmp_path):
    """Backbone gradients of the last step, weights and BN statistics with and without the probe are
    bitwise equal; the logged top-1 is a fresh evaluation of the final probe on the test split."""
    runs = {}
    for name, opts in (("plain", ()), ("probe", PROBE)):
        cfg = _cfg(
            "configs/Shapes/byol_r18.yaml",
            str(tmp_path / name),
            shapes_root,
            "DATASETS.TEST",
            "('shapes_val',)",
            "TEST.EVALUATORS",
            "()",
            *opts,
        )
        runs[name] = _train(cfg)
    plain, probed = (runs[n].model for n in ("plain", "probe"))
    for (key, p), q in zip(plain.backbone.named_parameters(), probed.backbone.parameters()):
        assert torch.equal(p.grad, q.grad), key
    for key, value in plain.state_dict().items():
        assert torch.equal(value, probed.state_dict()[key]), key
    hook = next(h for h in runs["probe"]._hooks if isinstance(h, OnlineProbe))
    with open(os.path.join(runs["probe"].cfg.OUTPUT_DIR, "metrics.json")) as f:
        logged = {r["iteration"]: r["online_probe/top1"] for r in map(json.loads, f) if "online_probe/top1" in r}
    assert sorted(logged) == [1, 4]  # after iteration 2 (TEST.EVAL_PERIOD) and after training
    fresh = inference_on_dataset(
        _ProbedBackbone(probed.backbone, hook.probe), ClassificationEvaluator(build_test_loader(runs["probe"].cfg, "shapes_val"))
    )
    assert logged[4] == fresh["top1"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(runs["probe"].cfg.OUTPUT_DIR)
    events.Reload()
    assert [e.step for e in events.Scalars("online_probe/top1")] == [1, 4]


@pytest.mark.slow
def test_probe_state_resumes_bitwise(shapes_root, tmp_path):
    states = []
    for name in ("reference", "killed"):
        cfg = _cfg(
            "configs/Shapes/byol_r18.yaml",
            str(tmp_path / name),
            shapes_root,
            *PROBE,
            "TEST.EVAL_PERIOD",
            "0",
            "DATASETS.TEST",
            "('shapes_val',)",
            "TEST.EVALUATORS",
            "()",
        )
        _reseed(0)
        trainer = _train(cfg) if name == "reference" else _kill_and_resume(cfg)
        hook = next(h for h in trainer._hooks if isinstance(h, OnlineProbe))
        states.append(hook.state_dict())
    saved = torch.load(os.path.join(str(tmp_path / "killed"), "model_0000001.pth"), weights_only=True)
    assert set(saved["trainer"]["hooks"]["OnlineProbe"]) == {"fc", "optimizer"}
    reference, resumed = states
    for key, value in reference["fc"].items():
        assert torch.equal(value, resumed["fc"][key]), key
    momentum = [s["optimizer"]["state"][0]["momentum_buffer"] for s in states]
    assert torch.equal(momentum[0], momentum[1])
