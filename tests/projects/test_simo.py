"""SiMo project: configs through IMPORTS, own-key exclusion, a training run, and 2 processes vs one."""

import glob
import json
import logging
import os
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssl_lab.config import import_project
from ssl_lab.engine import DefaultTrainer, HookBase, setup_cfg
from ssl_lab.engine.launch import find_free_port
from ssl_lab.layers import NaiveSyncBatchNorm
from ssl_lab.modeling import build_model
from ssl_lab.modeling.negative_samplers import AllNegatives, RandomNegatives

from conftest import REPO_ROOT, assert_linear_eval_keeps_backbone, tiny_overrides

import_project(os.path.join(REPO_ROOT, "projects", "EqCo", "eqco"))  # the loss of SiMo's configs (spawned workers)
simo = import_project(os.path.join(REPO_ROOT, "projects", "SiMo", "simo"))
CONFIGS = os.path.join(REPO_ROOT, "projects", "SiMo", "configs")


def simo_cfg(name: str, *opts):
    """A SiMo config file loaded the way tools/train_net.py loads it (IMPORTS, then overrides)."""
    return setup_cfg(SimpleNamespace(config_file=os.path.join(CONFIGS, name), opts=list(opts)))


def tiny_simo_cfg(*opts):
    """shapes_r18 at toy size: 32 px, head 64-64-32, global batch 16, K = 5 shared negatives."""
    return simo_cfg("shapes_r18.yaml", *tiny_overrides("unused", "unused"), "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES", "5", *opts)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "*.yaml"))), ids=os.path.basename)
def test_every_config_loads_through_imports(path):
    # MODEL.SIMO / MODEL.EQCO exist only if the IMPORTS of the file's _BASE_ chain ran add_config.
    cfg = setup_cfg(SimpleNamespace(config_file=path, opts=[]))
    assert cfg.IMPORTS == ("projects/EqCo/eqco", "projects/SiMo/simo")
    assert cfg.MODEL.META_ARCHITECTURE in ("SiMo", "LinearClassifier")


def test_r50_200ep_is_the_papers_setting():
    cfg = simo_cfg("r50_200ep.yaml", "MODEL.DEVICE", "cpu")
    sampler = cfg.MODEL.NEGATIVE_SAMPLER
    assert (sampler.NAME, sampler.NUM_NEGATIVES, sampler.SHARED) == ("RandomNegatives", 16, True)
    assert (cfg.MODEL.LOSS.NAME, cfg.MODEL.LOSS.TEMPERATURE, cfg.MODEL.EQCO.ALPHA) == ("EqCoLoss", 0.2, 256)
    assert cfg.MODEL.MOMENTUM.BASE == 0.999 and not cfg.MODEL.MOMENTUM.COSINE
    solver = cfg.SOLVER
    assert (solver.BASE_LR, solver.IMS_PER_BATCH, solver.REFERENCE_BATCH_SIZE) == (0.03, 256, 256)
    assert (solver.EPOCHS, solver.WARMUP_EPOCHS, solver.LR_SCHEDULER_NAME) == (200, 10, "WarmupCosineLR")
    assert cfg.DATASETS.TRAIN == ("imagenet_train",) and cfg.INPUT.AUGMENTATION == "MoCoV2"

    model = build_model(cfg)
    assert isinstance(model, simo.SiMo) and not model.shuffle_bn and not hasattr(model, "queue")
    head = model.projector
    assert [type(m).__name__ for m in head] == ["Linear", "NaiveSyncBatchNorm", "ReLU", "Linear", "NaiveSyncBatchNorm"]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (2048, 2048, 128)
    norms = [m for m in model.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, NaiveSyncBatchNorm) for m in norms)


def test_ablation_and_sibling_configs():
    assert simo_cfg("r50_100ep_momentum0.yaml").MODEL.MOMENTUM.BASE == 0.0
    shuffle = simo_cfg("r50_100ep_shufflebn.yaml")
    assert shuffle.MODEL.SIMO.SHUFFLE_BN and (shuffle.MODEL.BACKBONE.NORM, shuffle.MODEL.PROJECTOR.NORM) == ("BN", "BN")
    assert simo_cfg("r50_100ep.yaml").SOLVER.EPOCHS == 100 and simo_cfg("r50_800ep.yaml").SOLVER.EPOCHS == 800
    alpha = simo_cfg("r50_200ep_alpha65536.yaml").MODEL
    assert (alpha.NEGATIVE_SAMPLER.NUM_NEGATIVES, alpha.EQCO.ALPHA) == (256, 65536)
    assert simo_cfg("r50w2x_200ep.yaml").MODEL.BACKBONE.WIDTH_MULTIPLIER == 2
    assert simo_cfg("r50w4x_200ep.yaml").MODEL.BACKBONE.WIDTH_MULTIPLIER == 4


def test_config_checks():
    with pytest.raises(ValueError, match="memory bank"):
        build_model(tiny_simo_cfg("MODEL.QUEUE.NAME", "MoCoQueue"))


def test_k_above_the_other_keys_is_capped_as_the_official_code():
    # SelfSup's simo.py draws randperm(N - 1)[:K]: K = 16 at a global batch of 16 sees the 15 other keys.
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("ssl_lab")
    logger.addHandler(handler)
    try:
        model = build_model(tiny_simo_cfg("MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES", "16"))
    finally:
        logger.removeHandler(handler)
    assert model.negative_sampler.num_negatives == 15
    assert sum("15 other keys" in r.getMessage() for r in records) == 1
    neg = model.negative_sampler(torch.arange(15.0).expand(4, -1))
    assert sorted(neg[0].tolist()) == list(range(15))


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_drop_own_keys_removes_exactly_the_own_key(rank):
    n, world = 4, 3
    sim = torch.arange(n * world, dtype=torch.float).expand(n, -1)  # entry = index of the key
    kept = simo.drop_own_keys(sim, rank * n)
    for i in range(n):
        assert kept[i].tolist() == [j for j in range(n * world) if j != rank * n + i]


def _capture_loss_inputs(model):
    captured = {}
    model.loss.register_forward_hook(lambda module, inputs, output: captured.update(pos=inputs[0], neg=inputs[1]))
    return captured


def _own_key_check(model, images, sampler=None):
    """pos (N,), neg (N, K) of a step whose keys equal the queries (same view, encoders equal)."""
    model.negative_sampler = sampler or AllNegatives()
    captured = _capture_loss_inputs(model)
    with torch.no_grad():
        model([images, images])
    return captured["pos"], captured["neg"]


def _assert_own_key_excluded(pos, neg, num_negatives):
    # The own key has cosine 1 with its query; every other image's key is clearly below that.
    assert neg.shape == (pos.shape[0], num_negatives)
    torch.testing.assert_close(pos, torch.ones_like(pos), atol=1e-5, rtol=0)
    assert (neg < pos[:, None] - 1e-3).all()


@pytest.mark.parametrize(
    "sampler,k",
    [(AllNegatives(), 7), (RandomNegatives(6, shared=True), 6), (RandomNegatives(6, shared=False), 6)],
    ids=["all", "shared", "per_query"],
)
def test_negatives_never_include_own_key(sampler, k):
    torch.manual_seed(0)
    model = build_model(tiny_simo_cfg())
    pos, neg = _own_key_check(model, torch.randn(8, 3, 32, 32), sampler)
    _assert_own_key_excluded(pos, neg, k)


def _params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


class _RecordQueryEncoder(HookBase):
    """Keeps the query backbone's parameters after every step (after the EMA hook)."""

    def __init__(self):
        self.steps = []

    def after_step(self):
        self.steps.append(_params(self.trainer.model.backbone))


@pytest.fixture(scope="module")
def simo_run(shapes_root, tmp_path_factory):
    """shapes_r18 at toy size, 3 steps with the real trainer: (trainer, backbone at init, recorder)."""
    out = str(tmp_path_factory.mktemp("simo"))
    cfg = simo_cfg(
        "shapes_r18.yaml",
        *tiny_overrides(shapes_root, out),
        "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES",
        "8",
        "SOLVER.MAX_ITER",
        "3",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
        "DATASETS.TEST",
        "()",
    )
    torch.manual_seed(0)
    trainer = DefaultTrainer(cfg)
    initial = _params(trainer.model.backbone)
    assert torch.equal(initial, _params(trainer.model.momentum_backbone))
    recorder = _RecordQueryEncoder()
    trainer.register_hooks([recorder])
    trainer.resume_or_load(resume=False)
    trainer.train()
    return trainer, initial, recorder.steps


@pytest.mark.slow
def test_simo_trains_with_default_trainer(simo_run):
    trainer, initial, query_steps = simo_run
    model = trainer.model
    assert isinstance(model, simo.SiMo)
    with open(os.path.join(trainer.cfg.OUTPUT_DIR, "metrics.json")) as f:
        records = [json.loads(line) for line in f]
    losses = [(r["iteration"], r["loss_contrastive"]) for r in records if "loss_contrastive" in r]
    assert [it for it, _ in losses] == [0, 1, 2]
    # The key encoder is the EMA of the query encoder after each optimizer step, from the same init.
    momentum = trainer.cfg.MODEL.MOMENTUM.BASE
    expected = initial
    for query in query_steps:
        expected = momentum * expected + (1 - momentum) * query
    assert len(query_steps) == 3 and not torch.equal(query_steps[-1], initial)
    torch.testing.assert_close(_params(model.momentum_backbone), expected, atol=1e-6, rtol=1e-5)
    assert not torch.equal(_params(model.momentum_backbone), initial)


@pytest.mark.slow
def test_linear_eval_of_a_simo_checkpoint_keeps_backbone_and_bn_stats(simo_run, shapes_root, tmp_path):
    pretrain = simo_run[0]
    pretrained = {k: v.clone() for k, v in pretrain.model.backbone.state_dict().items()}
    cfg = simo_cfg(
        "shapes_r18_lincls.yaml",
        *tiny_overrides(shapes_root, str(tmp_path)),
        "SOLVER.MAX_ITER",
        "3",
        "SOLVER.STEPS",
        "()",
        "MODEL.WEIGHTS",
        os.path.join(pretrain.cfg.OUTPUT_DIR, "model_final.pth"),
    )
    # The SiMo checkpoint's backbone.* loads; 3 steps change neither weights nor BN running statistics.
    assert_linear_eval_keeps_backbone(cfg, pretrained)


def _step(model, views):
    """One forward/backward of `model` on `views`, then the own-key check on view 1."""
    torch.manual_seed(0)  # the same shared subset of negative columns on every rank and in one process
    loss = model(views)["loss_contrastive"]
    loss.backward()
    result = {
        "loss": loss.detach(),
        "grads": {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None},
        "buffers": {name: b.clone() for name, b in model.named_buffers() if "running_" in name},
    }
    result["pos"], result["neg"] = _own_key_check(model, views[0])
    return result


def _worker(rank, port, cfg, state, views, results):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    model = build_model(cfg).double()
    model.load_state_dict(state)
    results[rank] = _step(model, [v.chunk(2)[rank] for v in views])
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one_process_on_the_global_batch():
    # float64, so that the comparison is not limited by float32 rounding in a different summation order.
    cfg = tiny_simo_cfg()
    torch.manual_seed(0)
    model = build_model(cfg).double()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    views = [torch.randn(16, 3, 16, 16, dtype=torch.float64) for _ in range(2)]
    results = mp.Manager().dict()
    workers = mp.start_processes(_worker, nprocs=2, args=(find_free_port(), cfg, state, views, results), join=False, start_method="spawn")
    single = _step(model, views)
    while not workers.join():
        pass

    # Each rank's loss is the mean over its 8 queries; DDP averages the ranks' gradients.
    ranks = [results[0], results[1]]
    torch.testing.assert_close((ranks[0]["loss"] + ranks[1]["loss"]) / 2, single["loss"], atol=1e-10, rtol=1e-10)
    assert set(ranks[0]["grads"]) == set(single["grads"]) and len(single["grads"]) > 0
    for name, grad in single["grads"].items():
        averaged = (ranks[0]["grads"][name] + ranks[1]["grads"][name]) / 2
        torch.testing.assert_close(averaged, grad, atol=1e-10, rtol=1e-7, msg=lambda m: f"{name}: {m}")
    # SyncBN: both encoders' running statistics are those of the global batch on every rank.
    for name, buffer in single["buffers"].items():
        torch.testing.assert_close(ranks[1]["buffers"][name], buffer, atol=1e-10, rtol=1e-10)
    for result in ranks:  # rank 1's own keys sit at columns 8..15 of the gathered keys
        _assert_own_key_excluded(result["pos"], result["neg"], 15)


def test_the_k_cap_is_logged_once_per_command(tmp_path):
    """The K = 256 config at batch 256: the job check before launch builds the model silently, the
    run's own build logs the cap; a dry run shows the warning exactly once and K = 255."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "tools", "train_net.py"),
            "--config-file",
            os.path.join(CONFIGS, "r50_200ep_k256.yaml"),
            "--num-gpus",
            "8",
            "--dry-run",
            "OUTPUT_DIR",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": REPO_ROOT},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert output.count("NUM_NEGATIVES = 256 is more than the 255 other keys") == 1
    assert "negatives per query K: 255" in output
