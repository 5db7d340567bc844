"""EqCo project: the loss, its config and checks, the monitors, the configs and the toy MI run."""

import glob
import json
import math
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT = os.path.join(REPO_ROOT, "projects", "EqCo")
sys.path.insert(0, PROJECT)
sys.path.insert(0, os.path.join(PROJECT, "tools"))

from make_configs import build_configs  # noqa: E402

from eqco import ContrastiveMonitor, EqCoLoss, EqCoMonitor, add_eqco_config, negatives_per_query  # noqa: E402
from eqco.toy_mi import critic_losses, rho_for_mi  # noqa: E402
from ssl_lab.config import get_cfg  # noqa: E402
from ssl_lab.engine import HOOK_REGISTRY, DefaultTrainer, HookBase, build_extra_hooks, setup_cfg  # noqa: E402
from ssl_lab.modeling import build_loss, build_model  # noqa: E402
from ssl_lab.modeling.losses import SIMILARITIES, InfoNCELoss  # noqa: E402
from ssl_lab.solver import scaled_lr  # noqa: E402
from ssl_lab.utils.events import EventStorage  # noqa: E402


def eqco_cfg(*opts):
    cfg = get_cfg()
    add_eqco_config(cfg)
    cfg.merge_from_list(list(opts))
    return cfg


def project_cfg(name, *opts):
    """A project config loaded as tools/train_net.py loads it (IMPORTS, then the file, then `opts`)."""
    return setup_cfg(SimpleNamespace(config_file=os.path.join(PROJECT, "configs", name), opts=list(opts)))


def reference_loss(pos, neg, alpha, tau):
    """Eq. 5 evaluated literally in float64: mean of -log(e^{s+} / (e^{s+} + alpha/K sum e^{s_i}))."""
    pos, neg = pos.double() / tau, neg.double() / tau
    k = neg.shape[1]
    return -(pos.exp() / (pos.exp() + alpha / k * neg.exp().sum(dim=1))).log().mean()


@pytest.mark.parametrize("alpha,k", [(65536, 16), (4096, 256), (16, 1024), (3, 1)])
def test_loss_matches_formula(alpha, k):
    torch.manual_seed(k)
    pos, neg = torch.rand(32) * 2 - 1, torch.rand(32, k) * 2 - 1
    loss = EqCoLoss(alpha=alpha, temperature=0.2)(pos, neg)
    assert loss.item() == pytest.approx(reference_loss(pos, neg, alpha, 0.2).item(), rel=1e-5)


def test_alpha_equal_k_is_info_nce():
    torch.manual_seed(0)
    pos, neg = torch.randn(64), torch.randn(64, 256)
    eqco, info_nce = EqCoLoss(alpha=256, temperature=0.07)(pos, neg), InfoNCELoss(temperature=0.07)(pos, neg)
    assert torch.equal(eqco, info_nce)
    assert not torch.allclose(EqCoLoss(alpha=65536, temperature=0.07)(pos, neg), info_nce)


def test_expected_bound_invariant_to_k():
    """iid negative scores: E[L_EqCo], hence the bound log(alpha + 1) - E[L_EqCo], barely depends on K;
    InfoNCE's loss grows by ~log(1024 / 16) when the negatives dominate its denominator."""
    torch.manual_seed(0)
    n, tau, alpha = 4096, 0.2, 1024

    def expected_losses(k):
        pos = 0.2 + 0.1 * torch.randn(n)
        neg = (0.1 * torch.randn(n, k)).clamp(-1, 1)
        return EqCoLoss(alpha, tau)(pos, neg).item(), InfoNCELoss(tau)(pos, neg).item()

    (eqco_16, nce_16), (eqco_1024, nce_1024) = expected_losses(16), expected_losses(1024)
    assert abs(eqco_1024 - eqco_16) < 0.05
    assert nce_1024 - nce_16 == pytest.approx(math.log(1024 / 16), abs=0.3)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="ALPHA must be > 0"):
        build_loss(eqco_cfg("MODEL.LOSS.NAME", "EqCoLoss", "MODEL.EQCO.ALPHA", "0"), SIMILARITIES)
    with pytest.raises(ValueError, match="TEMPERATURE must be > 0"):
        build_loss(eqco_cfg("MODEL.LOSS.NAME", "EqCoLoss", "MODEL.LOSS.TEMPERATURE", "0.0"), SIMILARITIES)
    with pytest.raises(ValueError, match="K = 0"):
        EqCoLoss(alpha=256, temperature=0.2)(torch.zeros(4), torch.zeros(4, 0))
    # A queue smaller than the K negatives asked for, and more than SimCLR's 2N - 2 candidates.
    sampled = ("MODEL.NEGATIVE_SAMPLER.NAME", "RandomNegatives", "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES", "256")
    with pytest.raises(ValueError, match="more than the 64 candidates of the queue"):
        negatives_per_query(eqco_cfg("MODEL.LOSS.NAME", "EqCoLoss", "MODEL.QUEUE.SIZE", "64", *sampled))
    with pytest.raises(ValueError, match=r"more than the 126 candidates of SimCLR.*IMS_PER_BATCH.* = 64 / 1.*largest valid value is 126"):
        negatives_per_query(
            eqco_cfg(
                "MODEL.LOSS.NAME",
                "EqCoLoss",
                "MODEL.META_ARCHITECTURE",
                "SimCLR",
                "MODEL.QUEUE.NAME",
                "",
                "SOLVER.IMS_PER_BATCH",
                "64",
                *sampled,
            )
        )
    assert negatives_per_query(eqco_cfg("MODEL.QUEUE.SIZE", "1024", *sampled)) == 256


def test_lr_scales_with_queries_not_negatives():
    """EqCo's second rule: lr = BASE_LR * N / 256 with N the global batch; K plays no part."""
    for n, k in [(256, 16), (256, 65536), (512, 65536), (1024, 65536)]:
        cfg = eqco_cfg("SOLVER.BASE_LR", "0.03", "SOLVER.IMS_PER_BATCH", str(n), "MODEL.QUEUE.SIZE", str(k))
        assert scaled_lr(cfg) == pytest.approx(0.03 * n / 256)


class _TinyMoCo(nn.Module):
    """MoCo's structure in miniature: queries from `projector`, keys from `momentum_projector`."""

    def __init__(self, loss):
        super().__init__()
        self.projector, self.momentum_projector, self.loss = nn.Linear(8, 16), nn.Linear(8, 16), loss

    def forward(self, x, keys, queue):
        self.q = F.normalize(self.projector(x), dim=1)
        self.q.retain_grad()
        return self.loss((self.q * keys).sum(dim=1), self.q @ queue.T)


@pytest.mark.slow
def test_monitors_are_exact():
    torch.manual_seed(0)
    model = _TinyMoCo(EqCoLoss(alpha=4096, temperature=0.2))
    monitor = ContrastiveMonitor(mi_bound=True, grad_norm=True)
    monitor.trainer = SimpleNamespace(model=model)
    keys, queue = F.normalize(torch.randn(6, 16), dim=1), F.normalize(torch.randn(32, 16), dim=1)
    with EventStorage() as storage:
        monitor.before_train()
        loss = model(torch.randn(6, 8), keys, queue)
        loss.backward()
        monitor.after_train()
    latest = storage.latest()
    assert latest["eqco/mi_bound"][0] == pytest.approx(math.log(4097) - loss.item(), rel=1e-6)
    per_query = 6 * model.q.grad.norm(dim=1)  # d L_n / d q_n with L = mean_n L_n
    assert latest["eqco/grad_norm_q"][0] == pytest.approx(per_query.mean().item(), rel=1e-4)
    # Theorem 2: ||d L_n / d q_n|| <= (2 / tau) (1 - p+) <= 2 / tau.
    assert latest["eqco/grad_norm_q"][0] < 2 / 0.2


@pytest.mark.slow
def test_grad_norm_monitor_refuses_simclr_like_models():
    model = nn.Module()
    model.loss, model.projector = InfoNCELoss(0.1), nn.Linear(2, 2)
    monitor = ContrastiveMonitor(grad_norm=True)
    monitor.trainer = SimpleNamespace(model=model)
    with pytest.raises(ValueError, match="momentum encoder"):
        monitor.before_train()


def test_eqco_monitor_hook_checks_k_and_follows_model_eqco():
    """`EXTRA_HOOKS: ["EqCoMonitor"]`: the registered factory checks K (InfoNCE baselines too, whose
    loss does not) and returns the ContrastiveMonitor that MODEL.EQCO asks for."""
    assert HOOK_REGISTRY.get("EqCoMonitor") is EqCoMonitor
    sampled = ("MODEL.NEGATIVE_SAMPLER.NAME", "RandomNegatives", "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES", "32")
    with pytest.raises(ValueError, match="more than the 16 candidates of the queue"):
        build_extra_hooks(project_cfg("Shapes/mocov2_r18_k16.yaml", *sampled))
    with pytest.raises(ValueError, match="K = 0"):
        build_extra_hooks(project_cfg("Shapes/mocov2_r18_k16.yaml", "MODEL.QUEUE.SIZE", "0"))
    with pytest.raises(ValueError, match="more than the 30 candidates of SimCLR"):
        build_extra_hooks(project_cfg("Shapes/simclr_r18_k64.yaml", "SOLVER.IMS_PER_BATCH", "16"))
    # MODEL.EQCO.MONITOR_*: the monitors asked for; both off: a hook that does nothing, K still checked.
    (monitor,) = build_extra_hooks(project_cfg("Shapes/mocov2_r18_k16.yaml", "MODEL.EQCO.MONITOR_GRAD_NORM", "False"))
    assert isinstance(monitor, ContrastiveMonitor) and (monitor.mi_bound, monitor.grad_norm) == (True, False)
    off = ("MODEL.EQCO.MONITOR_MI_BOUND", "False", "MODEL.EQCO.MONITOR_GRAD_NORM", "False")
    (noop,) = build_extra_hooks(project_cfg("Shapes/mocov2_r18_k16.yaml", *off))
    assert type(noop) is HookBase
    with pytest.raises(ValueError, match="more than the 16 candidates"):
        build_extra_hooks(project_cfg("Shapes/mocov2_r18_k16.yaml", *off, *sampled))
    # A config that names the hook without the project's IMPORTS (no MODEL.EQCO).
    with pytest.raises(ValueError, match="no MODEL.EQCO"):
        EqCoMonitor(get_cfg())


@pytest.mark.slow
def test_moco_eqco_with_small_queue_trains(tmp_path):
    """MoCo v2 + EqCo on Shapes with K = 8 < N = 16: K random keys of the previous batch. A plain
    DefaultTrainer, as tools/train_net.py builds it: the monitors come from the config's EXTRA_HOOKS."""
    cfg = project_cfg(
        "Shapes/mocov2_r18_k16_eqco.yaml",
        *[
            "OUTPUT_DIR",
            str(tmp_path / "out"),
            "DATASETS.ROOT",
            str(tmp_path / "data"),
            "DATASETS.SHAPES.NUM_TRAIN",
            "64",
            "DATASETS.SHAPES.NUM_VAL",
            "32",
            "DATASETS.SHAPES.IMAGE_SIZE",
            "32",
            "INPUT.CROP_SIZE",
            "32",
            "INPUT.TEST_RESIZE",
            "32",
            "SOLVER.IMS_PER_BATCH",
            "16",
            "SOLVER.MAX_ITER",
            "3",
            "DATALOADER.NUM_WORKERS",
            "0",
            "TEST.EVAL_PERIOD",
            "0",
            "TEST.EVAL_AT_START",
            "False",
            "DATASETS.TEST",
            "()",
            "MODEL.PROJECTOR.HIDDEN_DIM",
            "64",
            "MODEL.QUEUE.SIZE",
            "8",
            "LOG_PERIOD",
            "1",  # every step's loss, to pair with the bound the monitor logs at that step
        ],
    )
    os.makedirs(cfg.OUTPUT_DIR)
    assert cfg.EXTRA_HOOKS == ("EqCoMonitor",)
    trainer = DefaultTrainer(cfg)
    (monitor,) = [h for h in trainer._hooks if isinstance(h, ContrastiveMonitor)]
    assert monitor.mi_bound and monitor.grad_norm
    seen = []
    trainer.model.loss.register_forward_hook(lambda m, inputs, out: seen.append(inputs[1].shape[1]))
    trainer.train()

    assert seen == [8, 8, 8]
    history = {k: [v for v, _ in trainer.storage.history(k).values] for k in ("loss_contrastive", "eqco/mi_bound", "eqco/grad_norm_q")}
    for loss, bound in zip(history["loss_contrastive"], history["eqco/mi_bound"]):
        assert loss + bound == pytest.approx(math.log(4096 + 1), rel=1e-5)
    assert all(0 < g < 2 / cfg.MODEL.LOSS.TEMPERATURE for g in history["eqco/grad_norm_q"])
    # After a step the queue holds 8 of the 16 keys of the previous batch.
    model = trainer.model
    with torch.no_grad():
        model.train()
        previous_queue = model.queue.negatives()
        views = [torch.randn(16, 3, 32, 32), torch.randn(16, 3, 32, 32)]
        model(views)
        keys = model.encode_keys(views[1])
    assert not torch.allclose(model.queue.queue, previous_queue)
    assert torch.cdist(model.queue.queue, keys).min(dim=1).values.max() < 1e-4


def test_simclr_eqco_draws_k_negatives_per_query():
    cfg = get_cfg()
    add_eqco_config(cfg)
    cfg.merge_from_file(os.path.join(PROJECT, "configs", "Shapes", "simclr_r18_k16_eqco.yaml"))
    cfg.merge_from_list(["SOLVER.IMS_PER_BATCH", "16", "MODEL.PROJECTOR.HIDDEN_DIM", "64"])
    model = build_model(cfg)
    seen = []
    model.loss.register_forward_hook(lambda m, inputs, out: seen.append((inputs[1].shape, m.alpha)))
    model([torch.randn(16, 3, 32, 32), torch.randn(16, 3, 32, 32)])
    # loss_a + loss_b: one call per view's N = 16 anchors, each with K = 16 negatives.
    assert [(tuple(shape), alpha) for shape, alpha in seen] == [((16, 16), 4096), ((16, 16), 4096)]


def test_configs_load_and_match_their_names():
    """Every committed config loads as tools/train_net.py loads it (IMPORTS adds MODEL.EQCO); K, alpha
    and N are what the name says; the files are what tools/make_configs.py writes."""
    config_dir = os.path.join(PROJECT, "configs")
    paths = sorted(glob.glob(os.path.join(config_dir, "*", "*.yaml")))
    expected = build_configs()
    assert sorted(os.path.relpath(p, config_dir) for p in paths) == sorted(expected)
    for path in paths:
        with open(path) as f:
            assert f.read() == expected[os.path.relpath(path, config_dir)]
        cfg = setup_cfg(SimpleNamespace(config_file=path, opts=[]))
        name = os.path.basename(path)[: -len(".yaml")]
        if name.startswith("Base-"):
            continue
        fields = dict((f[0], f[1:]) for f in name.split("_")[2:] if f[0] in "kn" and f[1:].isdigit())
        assert negatives_per_query(cfg) == int(fields.get("k", 65536 if "r50" in name else 4096))
        if "n" in fields:
            assert cfg.SOLVER.IMS_PER_BATCH == int(fields["n"])
        assert (cfg.MODEL.LOSS.NAME == "EqCoLoss") == name.endswith("_eqco")
        if name.endswith("_eqco"):
            assert cfg.MODEL.EQCO.ALPHA == (65536 if name.startswith("mocov2_r50") else 4096)
        assert cfg.OUTPUT_DIR.endswith(name)
        # Every config checks its K and logs the MI bound; the gradient norm is for MoCo only.
        assert cfg.EXTRA_HOOKS == ("EqCoMonitor",)
        (monitor,) = build_extra_hooks(cfg)
        assert isinstance(monitor, ContrastiveMonitor)
        assert (monitor.mi_bound, monitor.grad_norm) == (True, name.startswith("mocov2"))


def test_toy_critics_use_the_eqco_and_info_nce_losses():
    torch.manual_seed(0)
    scores = 3 * torch.randn(3, 64, 64)
    losses = critic_losses(scores, torch.tensor([512.0, 63.0, 16.0]))
    pos, neg = scores.diagonal(dim1=1, dim2=2), scores[:, ~torch.eye(64, dtype=torch.bool)].view(3, 64, 63)
    expected = [EqCoLoss(512, 1.0)(pos[0], neg[0]), InfoNCELoss(1.0)(pos[1], neg[1]), EqCoLoss(16, 1.0)(pos[2], neg[2])]
    assert losses.tolist() == pytest.approx([e.item() for e in expected], rel=1e-5)
    assert -10 * math.log(1 - rho_for_mi(6.0, dim=20) ** 2) == pytest.approx(6.0)


@pytest.mark.slow
def test_toy_mi_quick_run(tmp_path):
    """A short toy run: EqCo's estimates move across N far less than InfoNCE's (capped near log N)."""
    out = tmp_path / "toy"
    subprocess.run(
        [
            sys.executable,
            os.path.join(PROJECT, "tools", "toy_mi.py"),
            "--output",
            str(out),
            "--steps",
            "200",
            "--repeats",
            "10",
            "--mi",
            "8",
            "--batch-sizes",
            "64",
            "512",
            "--workers",
            "1",
            "--seed",
            "0",
        ],
        check=True,
        capture_output=True,
    )
    with open(out / "table.json") as f:
        table = json.load(f)
    info_nce, eqco = table["InfoNCE"]["8"], table["EqCo"]["8"]
    # The thresholds come from the bounds' definitions: an InfoNCE estimate from N pairs is at most
    # log N (plus the average's sampling error), so between N = 64 and 512 its cap moves by
    # log 8 = 2.08 nats; EqCo's (alpha = 512) is capped by log alpha at every N. Measured at seed 0:
    # InfoNCE 3.87 / 5.50, EqCo 5.59 / 5.50 (N = 64 / 512).
    assert info_nce["64"] < math.log(64) + 0.05
    assert info_nce["512"] > math.log(64)  # past the cap of N = 64: the estimate grows with N
    assert eqco["64"] > math.log(64)  # impossible for InfoNCE at N = 64
    assert abs(eqco["64"] - eqco["512"]) < math.log(512 / 64) / 2  # N moves it far less than the cap
    head = subprocess.run(["git", "-C", PROJECT, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert table["provenance"]["commit"] == head and "--steps 200" in table["provenance"]["command"]
    assert (out / "table.csv").read_text().startswith("method,mi,64,512")
    assert (out / "toy_mi.png").stat().st_size > 0
