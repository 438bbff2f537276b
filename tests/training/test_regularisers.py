"""The regularisers of the compared methods against independent computations: Hein and
Andriushchenko's Cross-Lipschitz term by the pair sum with analytic gradients of a one-hidden-
layer ReLU net; the Parseval retraction by numpy and by its fixed point; the Laplacian
smoothness by the pair sum it equals for m = 1 and by numpy's matrix power for m = 2."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from specrob.training.regularisers import (cross_lipschitz, laplacian_smoothness,
                                           parseval_retraction, smoothness_change)


def one_hidden_layer(d=6, h=7, k=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, k)).double()


def test_cross_lipschitz_equals_the_pair_sum_of_analytic_gradients():
    net = one_hidden_layer()
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    omega = cross_lipschitz(net(x), x).item()
    w1, b1 = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    w2 = net[2].weight.detach().numpy()
    xs = x.detach().numpy()
    k, total = w2.shape[0], 0.0
    for xi in xs:  # grad f_l = sum_j W2[l, j] 1[h_j > 0] W1[j, :]
        active = (w1 @ xi + b1 > 0).astype(float)
        grads = [(w2[cls] * active) @ w1 for cls in range(k)]
        total += sum(np.sum((grads[l] - grads[m]) ** 2) for l in range(k) for m in range(k))
    assert omega == pytest.approx(total / (len(xs) * k * k), rel=1e-10)


def test_cross_lipschitz_of_a_linear_map_is_the_spread_of_its_rows():
    torch.manual_seed(1)
    lin = nn.Linear(3, 5).double()
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    w = lin.weight.detach()
    spread = sum(((w[l] - w[m]) ** 2).sum() for l in range(5) for m in range(5)) / 25
    assert cross_lipschitz(lin(x), x).item() == pytest.approx(spread.item(), rel=1e-10)


def test_cross_lipschitz_is_differentiable_in_the_weights():
    net = one_hidden_layer()
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    cross_lipschitz(net(x), x).backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0


def test_cross_lipschitz_refuses_an_input_without_gradients():
    net = one_hidden_layer()
    x = torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="requires_grad"):
        cross_lipschitz(net(x), x)


def test_parseval_retraction_is_the_published_update_on_every_weight_matrix():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(12, 4))
    before = {n: p.detach().clone().numpy() for n, p in net.named_parameters()}
    parseval_retraction(net, 0.05)
    for name, p in net.named_parameters():
        w = before[name]
        if w.ndim < 2:
            assert np.array_equal(p.detach().numpy(), w), name  # biases untouched
            continue
        flat = w.reshape(w.shape[0], -1)
        want = (1.05 * flat - 0.05 * flat @ flat.T @ flat).reshape(w.shape)
        np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-5, atol=1e-6)


def test_repeated_parseval_retractions_reach_a_tight_frame():
    torch.manual_seed(3)
    lin = nn.Linear(10, 4, bias=False).double()
    with torch.no_grad():
        lin.weight.mul_(3.0)  # spectral norm well above 1
    for _ in range(300):
        parseval_retraction(lin, 0.1)
    w = lin.weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(4, dtype=torch.float64), atol=1e-8, rtol=0)


def test_laplacian_smoothness_with_m_1_is_the_similarity_across_classes():
    torch.manual_seed(4)
    h = torch.rand(7, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 2, 0, 2, 1])
    u = (h / h.norm(dim=1, keepdim=True)).numpy()
    across = sum(u[i] @ u[j] for i in range(7) for j in range(7) if y[i] != y[j])
    assert laplacian_smoothness(h, y, 3, 1).item() == pytest.approx(across, rel=1e-12)


def test_laplacian_smoothness_with_m_2_uses_the_squared_laplacian():
    torch.manual_seed(5)
    h = torch.rand(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    u = (h / h.norm(dim=1, keepdim=True)).numpy()
    w = u @ u.T
    lap = np.diag(w.sum(1)) - w
    onehot = np.eye(2)[y.numpy()]
    want = np.trace(onehot.T @ lap @ lap @ onehot)
    assert laplacian_smoothness(h, y, 2, 2).item() == pytest.approx(want, rel=1e-12)


def test_smoothness_change_is_zero_for_layers_with_the_same_geometry():
    torch.manual_seed(6)
    h = torch.rand(6, 4)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    # a positive rescaling keeps the cosine graph: no change between the layers
    assert smoothness_change([h, 3 * h, h], y, 2).item() == pytest.approx(0.0, abs=1e-5)
    assert smoothness_change([h, torch.rand(6, 4)], y, 2).item() > 0
    with pytest.raises(ValueError, match="at least 2"):
        smoothness_change([h], y, 2)


def test_a_regime_option_is_part_of_the_identity_of_its_own_regime_only():
    from specrob.training.config import TrainConfig
    assert not {"beta", "gamma", "power"} & set(TrainConfig().options())
    assert "beta" not in TrainConfig(regime="baseline", beta=0.5).options()
    assert TrainConfig(regime="parseval", beta=0.5).options()["beta"] == 0.5
    lap = TrainConfig(regime="laplacian", gamma=0.1, power=1).options()
    assert (lap["gamma"], lap["power"]) == (0.1, 1)
    with pytest.raises(Exception, match="power"):
        TrainConfig(regime="laplacian", power=0)


def test_cross_lipschitz_batched_and_per_class_passes_agree_in_value_and_gradient():
    net = one_hidden_layer(seed=7)
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    values, grads = [], []
    for batched in (True, False):
        net.zero_grad()
        omega = cross_lipschitz(net(x), x, batched=batched)
        omega.backward()
        values.append(omega.item())
        grads.append(net[0].weight.grad.clone())
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    torch.testing.assert_close(grads[0], grads[1])


def test_the_relu_recorder_sees_every_relu_however_it_is_written():
    from specrob.training.regimes import ReluRecorder

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 5), nn.Linear(5, 5), nn.Linear(5, 3)
            self.act = nn.ReLU()

        def forward(self, x):
            h1 = self.act(self.a(x))                       # nn.ReLU
            h2 = torch.nn.functional.relu(self.b(h1))      # F.relu
            h3 = torch.relu(self.b(h2))                    # torch.relu
            return self.c(self.b(h3).relu())               # Tensor.relu

    net, x = Mixed(), torch.randn(3, 4)
    recorder = ReluRecorder()
    with recorder:
        out = net(x)
    assert len(recorder.seen) == 4
    torch.testing.assert_close(recorder.seen[0], torch.relu(net.a(x)))
    torch.testing.assert_close(out, net(x))  # the recorder changes nothing
    assert all(h.min() >= 0 for h in recorder.seen)
