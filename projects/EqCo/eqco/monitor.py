"""Training monitors of the paper's Fig. 1 (MI lower bound) and Fig. 2 (gradient norm w.r.t. q),
and the `EqCoMonitor` hook that `EXTRA_HOOKS: ["EqCoMonitor"]` adds to a DefaultTrainer."""

import torch

from ssl_lab.config import ConfigError
from ssl_lab.engine import HOOK_REGISTRY, HookBase
from ssl_lab.modeling.losses import InfoNCELoss
from ssl_lab.utils.comm import unwrap_model
from ssl_lab.utils.events import get_event_storage

from .config import negatives_per_query
from .loss import mi_lower_bound


class ContrastiveMonitor(HookBase):
    """Logs EqCo's monitors from the model's contrastive `loss(pos, neg)` module.

    "eqco/mi_bound": log(alpha + 1) - L (log(K + 1) - L for InfoNCE), the batch's MI lower bound.
    "eqco/grad_norm_q" (optional): mean over queries n of ||d L_n / d q_n||, L_n the loss of query n
    and q_n = z_n / ||z_n|| its normalized embedding, z_n = `model.projector` output. It is assembled
    in backward from two exact parts: the tangential part ||z_n|| ||d L / d z_n||, and the radial
    part q_n . d L / d q_n = sum_a (d L / d c_a) c_a over the query's cosines c = [pos_n, neg_n].
    This needs queries that enter the loss only as queries (MoCo: keys from a momentum encoder).
    """

    def __init__(self, mi_bound: bool = True, grad_norm: bool = False):
        self.mi_bound = mi_bound
        self.grad_norm = grad_norm
        self._handles = []
        self._radial = {}

    def before_train(self):
        model = unwrap_model(self.trainer.model)
        if not isinstance(model.loss, InfoNCELoss):
            raise ConfigError(
                f"EqCo's monitors need a contrastive loss (InfoNCELoss, EqCoLoss), not {type(model.loss).__name__}; "
                "set MODEL.EQCO.MONITOR_MI_BOUND and MONITOR_GRAD_NORM to False"
            )
        if self.grad_norm and not hasattr(model, "momentum_projector"):
            raise ConfigError(
                "MODEL.EQCO.MONITOR_GRAD_NORM needs queries from `projector` and keys from a separate "
                f"momentum encoder (MoCo); {type(model).__name__} uses its embeddings as keys too"
            )
        self._handles.append(model.loss.register_forward_hook(self._after_loss))
        if self.grad_norm:
            self._handles.append(model.projector.register_forward_hook(self._after_projector))

    def after_train(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _after_loss(self, module, inputs, loss):
        pos, neg = inputs
        if self.mi_bound:
            alpha = getattr(module, "alpha", neg.shape[1])  # InfoNCELoss: alpha = K
            get_event_storage().put_scalar("eqco/mi_bound", mi_lower_bound(loss.detach(), alpha))
        if self.grad_norm and loss.requires_grad:
            # The radial part, per query and per (mean) loss: filled in during backward.
            # Hooks hold detached copies: a hook on a tensor must not reference the tensor itself.
            self._radial = {}
            pos_value, neg_value = pos.detach(), neg.detach()
            pos.register_hook(lambda g: self._radial.__setitem__("pos", g * pos_value))
            neg.register_hook(lambda g: self._radial.__setitem__("neg", (g * neg_value).sum(dim=1)))

    def _after_projector(self, module, inputs, z):
        if z.requires_grad:
            z_value = z.detach()
            z.register_hook(lambda dz: self._log_grad_norm(z_value, dz))

    def _log_grad_norm(self, z: torch.Tensor, dz: torch.Tensor) -> None:
        """z, dz: (N, D) query embeddings and d L / d z, L the mean loss over the N queries."""
        tangential = z.float().norm(dim=1) * dz.float().norm(dim=1)
        radial = self._radial["pos"].float() + self._radial["neg"].float()
        per_query = torch.sqrt(tangential**2 + radial**2) * z.shape[0]
        get_event_storage().put_scalar("eqco/grad_norm_q", per_query.mean())


@HOOK_REGISTRY.register()
def EqCoMonitor(cfg) -> HookBase:  # noqa: N802 (the registered name)
    """The hook of `EXTRA_HOOKS: ["EqCoMonitor"]`: checks the config's K, then monitors as MODEL.EQCO says.

    `negatives_per_query(cfg)` raises a clear ValueError for K = 0 or more sampled negatives
    than candidates (before training starts). Returns a :class:`ContrastiveMonitor` with
    MODEL.EQCO.MONITOR_MI_BOUND / MONITOR_GRAD_NORM, or a hook that does nothing when both are off
    (the K check still runs).
    """
    if "EQCO" not in cfg.MODEL:
        raise ConfigError('EXTRA_HOOKS names "EqCoMonitor" but the config has no MODEL.EQCO; add "projects/EqCo/eqco" to IMPORTS')
    negatives_per_query(cfg)
    eqco = cfg.MODEL.EQCO
    if not (eqco.MONITOR_MI_BOUND or eqco.MONITOR_GRAD_NORM):
        return HookBase()
    return ContrastiveMonitor(eqco.MONITOR_MI_BOUND, eqco.MONITOR_GRAD_NORM)
