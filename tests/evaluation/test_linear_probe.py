"""The linear probe (ssl_lab.evaluation.linear_probe): the fit reaches the optimum of its convex
objective (against L-BFGS in float64), separable features give 100 %, the result does not depend
on the features' scale, and the learning rate is chosen without looking at the test split."""

import torch
import torch.nn.functional as F

from ssl_lab.evaluation import linear_probe as linear_probe_module
from ssl_lab.evaluation.linear_probe import fit_softmax_classifier, linear_probe, standardize, stratified_holdout


def _blobs(n_per_class: int, num_classes: int, dim: int, spread: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g) * 3
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    return centres[labels] + spread * torch.randn(labels.shape[0], dim, generator=g), labels


def _objective(weight, bias, x, y, weight_decay):
    """Mean cross-entropy + weight_decay / 2 * ||params||^2: what SGD with weight_decay minimizes."""
    return F.cross_entropy(x @ weight.T + bias, y) + weight_decay / 2 * (weight.square().sum() + bias.square().sum())


def test_fit_reaches_the_float64_optimum_of_its_objective():
    x, y = _blobs(40, 4, 8, spread=3.0, seed=0)  # overlapping classes: a finite optimum
    x, y = x.double(), y
    weight_decay = 1e-2
    w = torch.zeros(4, 8, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    lbfgs = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        loss = _objective(w, b, x, y, weight_decay)
        loss.backward()
        return loss

    lbfgs.step(closure)
    optimum = _objective(w, b, x, y, weight_decay).item()
    fitted = fit_softmax_classifier(x, y, 4, lr=0.3, steps=500, weight_decay=weight_decay)
    reached = _objective(fitted.weight, fitted.bias, x, y, weight_decay).item()
    assert optimum <= reached < optimum + 1e-4, (reached, optimum)


def test_separable_features_give_full_accuracy():
    x, y = _blobs(60, 5, 16, spread=0.1, seed=1)
    test = torch.arange(0, 300, 3)
    train = torch.tensor([i for i in range(300) if i % 3])
    result = linear_probe(
        F.normalize(x[train]), y[train], F.normalize(x[test]), y[test], lrs=(0.1, 1.0), steps=200, weight_decay=0.0, holdout_fraction=0.1
    )
    assert result["linear_probe/top1"] == 100.0


def test_result_does_not_depend_on_the_scale_of_the_features():
    x, y = _blobs(50, 3, 12, spread=2.5, seed=2)
    args = dict(lrs=(0.03, 0.3), steps=100, weight_decay=0.0, holdout_fraction=0.2)
    x = x.double()
    base = linear_probe(x[:120], y[:120], x[120:], y[120:], **args)
    scale, shift = torch.logspace(-3, 3, 12), torch.linspace(-50, 50, 12)
    scaled = linear_probe(x[:120] * scale + shift, y[:120], x[120:] * scale + shift, y[120:], **args)
    assert scaled == base


def test_standardize_uses_the_fitting_split_only():
    fit = torch.tensor([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    other = torch.tensor([[6.0, 7.0]])
    fit_z, other_z = standardize(fit, other)
    # column 0: mean 2, std 2 (n - 1); column 1 is constant: only shifted
    assert torch.equal(fit_z, torch.tensor([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]))
    assert torch.equal(other_z, torch.tensor([[2.0, 2.0]]))


def test_holdout_is_stratified_and_never_a_whole_class():
    labels = torch.tensor([0] * 10 + [1] * 30 + [2] * 2 + [3])
    held = stratified_holdout(labels, 0.1, seed=0)
    assert [int(held[labels == c].sum()) for c in range(4)] == [1, 3, 1, 0]
    assert torch.equal(held, stratified_holdout(labels, 0.1, seed=0))


def test_the_test_split_does_not_choose_the_lr(monkeypatch):
    x, y = _blobs(40, 4, 10, spread=2.0, seed=3)
    test_labels = y[120:]
    scored = []
    original = linear_probe_module.accuracy

    def spy(classifier, features, labels):
        scored.append(labels.shape == test_labels.shape and bool(torch.equal(labels, test_labels)))
        return original(classifier, features, labels)

    monkeypatch.setattr(linear_probe_module, "accuracy", spy)
    result = linear_probe(
        x[:120], y[:120], x[120:], test_labels, lrs=(0.001, 0.01, 0.1, 1.0), steps=60, weight_decay=0.0, holdout_fraction=0.25
    )
    # one held-out score per lr, then the test split once: the final score of the chosen lr
    assert scored == [False] * 4 + [True]
    assert result["linear_probe/lr"] in (0.001, 0.01, 0.1, 1.0)
