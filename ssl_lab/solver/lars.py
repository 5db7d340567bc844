import torch
from torch.optim import Optimizer


class LARS(Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al., 2017).

    Each parameter group may set `lars=False` (biases and norm parameters in
    SimCLR/BYOL) to get plain SGD with momentum for its parameters.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                if group["lars"]:
                    param_norm, grad_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                    trust = torch.where(
                        (param_norm > 0) & (grad_norm > 0), group["eta"] * param_norm / grad_norm, torch.ones_like(param_norm)
                    )
                    grad = grad * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
