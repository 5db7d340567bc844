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
    assert z.grad is None and p.grad.abs().sum() > 0
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
