"""MoCo v3 against facebookresearch/moco-v3 @ c349e6e (moco/builder.py, main_moco.py), whose formulas are
transcribed below: the loss in float64, the heads, the momentum schedule and when it is applied, one
step on 1 and 2 processes, and the Shapes ViT config training and resuming bitwise."""

import math
import os
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssl_lab.config import get_cfg
from ssl_lab.engine.hooks import MomentumUpdate
from ssl_lab.engine.launch import find_free_port
from ssl_lab.modeling import build_model
from ssl_lab.modeling.heads import MoCoV3Head
from ssl_lab.modeling.losses import mocov3_contrastive_loss
from ssl_lab.solver import build_lr_scheduler, build_optimizer
from ssl_lab.utils.events import EventStorage

from conftest import REPO_ROOT
from resume_testing import _cfg, _reseed, _trainer, assert_kill_and_resume_is_bitwise

SHAPES_VIT = "configs/Shapes/mocov3_vit_tiny.yaml"


# ----------------------------------------------------------------------------- official code, transcribed


def official_contrastive_loss(q, k_all, rank, T):
    """moco/builder.py MoCo.contrastive_loss, with concat_all_gather done by the caller (k_all)."""
    q = nn.functional.normalize(q, dim=1)
    k = nn.functional.normalize(k_all, dim=1)
    logits = torch.einsum("nc,mc->nm", [q, k]) / T
    N = logits.shape[0]  # batch size per GPU
    labels = torch.arange(N, dtype=torch.long) + N * rank
    return nn.CrossEntropyLoss()(logits, labels) * (2 * T)


def official_build_mlp(num_layers, input_dim, mlp_dim, output_dim, last_bn=True):
    """moco/builder.py MoCo._build_mlp."""
    mlp = []
    for layer in range(num_layers):
        dim1 = input_dim if layer == 0 else mlp_dim
        dim2 = output_dim if layer == num_layers - 1 else mlp_dim
        mlp.append(nn.Linear(dim1, dim2, bias=False))
        if layer < num_layers - 1:
            mlp.append(nn.BatchNorm1d(dim2))
            mlp.append(nn.ReLU(inplace=True))
        elif last_bn:
            mlp.append(nn.BatchNorm1d(dim2, affine=False))
    return nn.Sequential(*mlp)


def official_momentum(epoch, epochs, moco_m):
    """main_moco.py adjust_moco_momentum, called with epoch + i / iters_per_epoch."""
    return 1.0 - 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)) * (1.0 - moco_m)


# ----------------------------------------------------------------------------- loss and heads


@pytest.mark.parametrize("rank", [0, 1, 2])
@pytest.mark.parametrize("temperature", [0.2, 1.0])
def test_loss_equals_the_official_formula_in_float64(rank, temperature):
    torch.manual_seed(rank)
    world, n, d = 3, 5, 8
    q = torch.randn(n, d, dtype=torch.float64)
    k_all = torch.randn(world * n, d, dtype=torch.float64)
    k_all[rank * n : (rank + 1) * n] += 3 * q  # own keys close to the queries: the label offset matters
    expected = official_contrastive_loss(q, k_all, rank, temperature)
    actual = mocov3_contrastive_loss(q, k_all, rank, temperature)
    assert actual.dtype == torch.float64
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_layers,last_bn", [(2, True), (3, True), (2, False)])
def test_heads_are_the_official_mlp(num_layers, last_bn):
    torch.manual_seed(0)
    official = official_build_mlp(num_layers, 12, 16, 8, last_bn)
    ours = MoCoV3Head(12, 16, 8, num_layers=num_layers, last_bn=last_bn)
    assert [type(m) for m in ours] == [type(m) for m in official]
    ours.load_state_dict(official.state_dict(), strict=True)  # the same parameters and buffers, by name and shape
    x = torch.randn(6, 12)
    torch.testing.assert_close(ours(x), official(x))


def _tiny_vit_cfg(*opts):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, SHAPES_VIT))
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.BACKBONE.TIMM.KWARGS",
            "('img_size', 16, 'patch_size', 4, 'embed_dim', 32, 'depth', 2, 'num_heads', 2)",
            "MODEL.PROJECTOR.HIDDEN_DIM",
            "24",
            "MODEL.PROJECTOR.OUT_DIM",
            "8",
            "MODEL.PREDICTOR.HIDDEN_DIM",
            "24",
            "MODEL.PREDICTOR.OUT_DIM",
            "8",
            *opts,
        ]
    )
    return cfg


def test_forward_is_the_official_symmetric_loss():
    """MoCo.forward: q = predictor(base_encoder(x)), k = momentum_encoder(x) (backbone + projector), each view
    on its own; loss(q1, k2) + loss(q2, k1)."""
    torch.manual_seed(0)
    model = build_model(_tiny_vit_cfg()).double()
    with torch.no_grad():  # a momentum encoder apart from the online one, so that swapping them shows
        for p in model.momentum_backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x1, x2 = (torch.randn(6, 3, 16, 16, dtype=torch.float64) for _ in range(2))
    base = nn.Sequential(model.backbone, model.projector)
    momentum = nn.Sequential(model.momentum_backbone, model.momentum_projector)
    q1, q2 = model.predictor(base(x1)), model.predictor(base(x2))
    with torch.no_grad():
        k1, k2 = momentum(x1), momentum(x2)
    expected = official_contrastive_loss(q1, k2, 0, 0.2) + official_contrastive_loss(q2, k1, 0, 0.2)
    torch.testing.assert_close(model([x1, x2])["loss_contrastive"], expected, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- momentum schedule


def _first_weight(module):
    return next(module.parameters()).view(-1)[0]


def test_momentum_schedule_and_its_timing_are_the_officials():
    """main_moco.py: at iteration k = epoch * ipe + i, before the forward, the momentum encoder moves with
    m_k = adjust_moco_momentum(epoch + i / ipe). ssl_lab moves it after the optimizer step of k - 1
    (MomentumUpdate hook); the encoder each forward sees must be the same."""
    epochs, ipe, m0 = 3, 4, 0.9
    max_iter = epochs * ipe
    torch.manual_seed(0)
    steps = torch.randn(max_iter, dtype=torch.float64)  # what each optimizer step adds to the online weight

    online, official_target, official_seen = torch.tensor(1.0, dtype=torch.float64), 1.0, []
    for epoch in range(epochs):
        for i in range(ipe):
            m = official_momentum(epoch + i / ipe, epochs, m0)
            official_target = official_target * m + online * (1.0 - m)
            official_seen.append(float(official_target))
            online = online + steps[epoch * ipe + i]

    model = build_model(_tiny_vit_cfg("MODEL.MOMENTUM.BASE", str(m0))).double()
    with torch.no_grad():
        _first_weight(model.backbone).fill_(1.0)
        _first_weight(model.momentum_backbone).fill_(1.0)
    hook = MomentumUpdate(m0, cosine=True)
    hook.trainer = SimpleNamespace(model=model, max_iter=max_iter, iter=0)
    seen = []
    with EventStorage():
        for k in range(max_iter):
            seen.append(_first_weight(model.momentum_backbone).item())  # what the forward of iteration k uses
            with torch.no_grad():
                _first_weight(model.backbone).add_(steps[k])
            hook.trainer.iter = k
            hook.after_step()
    assert seen == pytest.approx(official_seen, abs=1e-12)


def test_lr_schedule_is_the_officials_warmup_then_cosine():
    """main_moco.py adjust_learning_rate: lr * epoch / warmup, then a half cosine over the epochs after it."""
    epochs, warmup, ipe, lr = 10, 4, 3, 0.6
    cfg = _tiny_vit_cfg(
        "SOLVER.MAX_ITER",
        str(epochs * ipe),
        "SOLVER.WARMUP_ITERS",
        str(warmup * ipe),
        "SOLVER.BASE_LR",
        str(lr),
        "SOLVER.IMS_PER_BATCH",
        "256",
    )
    optimizer = build_optimizer(cfg, nn.Linear(2, 2))
    scheduler = build_lr_scheduler(cfg, optimizer)
    for k in range(epochs * ipe):
        epoch = k / ipe
        expected = lr * epoch / warmup if epoch < warmup else lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-12), k
        optimizer.step()
        scheduler.step()


def test_adamw_decays_every_trainable_parameter_and_skips_frozen_ones():
    """main_moco.py: torch.optim.AdamW(model.parameters(), lr, weight_decay): no parameter group is exempt;
    the frozen patch projection and position embedding get no gradient, hence no update."""
    model = build_model(_tiny_vit_cfg())
    optimizer = build_optimizer(_tiny_vit_cfg(), model)
    assert isinstance(optimizer, torch.optim.AdamW) and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert group["weight_decay"] == 0.1 and group["betas"] == (0.9, 0.999)
    frozen = {id(p) for name, p in model.named_parameters() if "patch_embed" in name or "pos_embed" in name}
    assert frozen and not frozen & {id(p) for p in group["params"]}
    online = [p for name, p in model.named_parameters() if not name.startswith("momentum_") and id(p) not in frozen]
    assert {id(p) for p in group["params"]} == {id(p) for p in online}


# ----------------------------------------------------------------------------- 1 vs 2 processes


def _step(model, views, world=1):
    """One training step: forward/backward, gradients averaged over ranks (as DDP), AdamW, momentum update."""
    optimizer = build_optimizer(_tiny_vit_cfg(), model)
    loss = model(views)["loss_contrastive"]
    loss.backward()
    for p in model.parameters():
        if p.grad is not None and world > 1:
            dist.all_reduce(p.grad)
            p.grad /= world
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    model.momentum_update(0.9)
    loss = loss.detach().clone()
    if world > 1:
        dist.all_reduce(loss)
    return {"loss": loss / world, "grads": grads, "state": {k: v.clone() for k, v in model.state_dict().items()}}


def _worker(rank, port, state, views, results):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    model = build_model(_tiny_vit_cfg()).double()
    model.load_state_dict(state)
    results[rank] = _step(model, [v.chunk(2)[rank] for v in views], world=2)
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one_process_on_the_global_batch():
    """Keys gathered over ranks with each rank's positives at rank * N + i; SyncBN in the heads. In float64,
    so that only the summation order differs. Each rank's loss is the mean over its queries, and the
    ranks' gradients are averaged, as DDP does."""
    torch.manual_seed(0)
    model = build_model(_tiny_vit_cfg()).double()
    with torch.no_grad():
        for p in model.momentum_backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    views = [torch.randn(8, 3, 16, 16, dtype=torch.float64) for _ in range(2)]
    results = mp.Manager().dict()
    workers = mp.start_processes(_worker, nprocs=2, args=(find_free_port(), state, views, results), join=False, start_method="spawn")
    single = _step(model, views)
    while not workers.join():
        pass
    for result in (results[0], results[1]):
        torch.testing.assert_close(result["loss"], single["loss"], atol=1e-10, rtol=1e-10)
        assert set(result["grads"]) == set(single["grads"]) and len(single["grads"]) > 0
        for name, grad in single["grads"].items():
            torch.testing.assert_close(result["grads"][name], grad, atol=1e-10, rtol=1e-7, msg=lambda m: f"{name}: {m}")
        # After the AdamW step and the EMA update: online and momentum weights, SyncBN running statistics
        # (not its batch counter, which the one-process path of NaiveSyncBatchNorm leaves alone).
        for name, value in single["state"].items():
            if name.endswith("num_batches_tracked"):
                continue
            torch.testing.assert_close(result["state"][name], value, atol=1e-9, rtol=1e-7, msg=lambda m: f"{name}: {m}")


# ----------------------------------------------------------------------------- the Shapes ViT config


# The config's ViT-Tiny cut to 2 blocks: the run is about the trainer, AdamW and the EMA, not the depth.
TWO_BLOCKS = ("MODEL.BACKBONE.TIMM.KWARGS", "('img_size', 32, 'patch_size', 4, 'depth', 2)")


@pytest.mark.slow
def test_shapes_vit_config_trains_and_resumes_bitwise(shapes_root, tmp_path):
    _reseed(0)  # as the runs below start: the same initial weights
    initial = _trainer(_cfg(SHAPES_VIT, str(tmp_path / "initial"), shapes_root, *TWO_BLOCKS)).model.backbone.state_dict()
    reference = assert_kill_and_resume_is_bitwise(SHAPES_VIT, tmp_path, shapes_root, *TWO_BLOCKS)
    trained = reference.model.backbone.state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in trained.items() if "patch_embed" not in k)
    for key in ("model.patch_embed.proj.weight", "model.pos_embed"):  # frozen, as the official ViT
        assert torch.equal(initial[key], trained[key]), key
