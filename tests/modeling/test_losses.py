import math

import pytest
import torch
import torch.nn.functional as F

from ssl_lab.config import get_cfg
from ssl_lab.modeling import build_loss, build_model
from ssl_lab.modeling.losses import SIMILARITIES, BYOLLoss, InfoNCELoss


def test_info_nce_matches_formula_in_float64():
    torch.manual_seed(0)
    pos, neg, tau = torch.rand(8, dtype=torch.float64), torch.rand(8, 20, dtype=torch.float64), 0.2
    expected = -torch.log(torch.exp(pos / tau) / (torch.exp(pos / tau) + torch.exp(neg / tau).sum(1))).mean()
    torch.testing.assert_close(InfoNCELoss(tau)(pos, neg), expected.float(), rtol=1e-6, atol=1e-6)


def test_info_nce_with_one_hopeless_negative_is_log2():
    # s+ == s_1: the positive's probability is 1/2.
    assert math.isclose(InfoNCELoss(1.0)(torch.ones(4), torch.ones(4, 1)).item(), math.log(2), rel_tol=1e-6)


def test_info_nce_rejects_bad_settings():
    import pytest

    with pytest.raises(ValueError, match="TEMPERATURE"):
        InfoNCELoss(0.0)
    with pytest.raises(ValueError, match="K = 0"):
        InfoNCELoss(0.2)(torch.ones(2), torch.ones(2, 0))


def test_byol_loss_is_two_minus_two_cosine_and_stops_target_gradient():
    p = torch.randn(6, 16, requires_grad=True)
    z = torch.randn(6, 16, requires_grad=True)
    loss = BYOLLoss()(p, z)
    expected = (2 - 2 * F.cosine_similarity(p, z, dim=1)).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # d/dp of mean_i (2 - 2 cos(p_i, z_i)) = -(2 / N) (z_i / (|p_i| |z_i|) - cos_i p_i / |p_i|^2), in float64
    p64, z64 = p.detach().double(), z.detach().double()
    cos = F.cosine_similarity(p64, z64, dim=1)[:, None]
    pn, zn = p64.norm(dim=1, keepdim=True), z64.norm(dim=1, keepdim=True)
    expected_grad = -(2 / 6) * (z64 / (pn * zn) - cos * p64 / pn**2)
    assert z.grad is None
    torch.testing.assert_close(p.grad.double(), expected_grad, rtol=1e-5, atol=1e-7)
    assert BYOLLoss()(z.detach(), z.detach()).abs().item() < 1e-6


def test_build_loss_from_registry():
    cfg = get_cfg()
    cfg.MODEL.LOSS.NAME, cfg.MODEL.LOSS.TEMPERATURE = "InfoNCELoss", 0.5
    assert build_loss(cfg, SIMILARITIES).temperature == 0.5


@pytest.mark.parametrize("method, loss, compatible", [("MoCo", "BYOLLoss", "InfoNCELoss"), ("BYOL", "InfoNCELoss", "BYOLLoss")])
def test_loss_of_another_kind_fails_at_build_naming_compatible_losses(method, loss, compatible):
    """A loss whose inputs the method does not pass is refused when the model is built, not mid-forward."""
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.LOSS.NAME, cfg.MODEL.DEVICE = method, loss, "cpu"
    cfg.MODEL.BACKBONE.DEPTH, cfg.MODEL.QUEUE.SIZE = 18, 64
    with pytest.raises(ValueError, match=f"MODEL.LOSS.NAME '{loss}' takes .* but {method} calls its loss with") as err:
        build_model(cfg)
    listed = str(err.value).split("Compatible losses: ")[1].split(", ")  # projects may have registered more
    assert compatible in listed and loss not in listed


def test_byol_model_symmetrizes_the_loss_over_both_views():
    from torch import nn

    from ssl_lab.modeling.meta_arch.byol import BYOL

    torch.manual_seed(0)
    model = BYOL(
        backbone=nn.Sequential(nn.Flatten(), nn.Linear(12, 6)), projector=nn.Linear(6, 5), predictor=nn.Linear(5, 5), loss=BYOLLoss()
    )
    views = [torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)]
    with torch.no_grad():  # the target is a different network after some EMA steps
        for p in model.momentum_projector.parameters():
            p.add_(torch.randn_like(p))

    def run(modules, x):
        for m in modules:
            x = x.flatten(1) @ m.weight.double().T + m.bias.double()
        return x

    online = [model.backbone[1], model.projector, model.predictor]
    target = [model.momentum_backbone[1], model.momentum_projector]
    p1, p2 = (run(online, v.double()) for v in views)
    z1, z2 = (run(target, v.double()) for v in views)

    def regression(p, z):
        return (2 - 2 * F.cosine_similarity(p, z, dim=1)).mean()

    expected = regression(p1, z2) + regression(p2, z1)  # Grill et al. 2020, Eq. 2 plus its symmetric term
    torch.testing.assert_close(model(views)["loss_byol"].double(), expected, rtol=1e-5, atol=1e-6)
