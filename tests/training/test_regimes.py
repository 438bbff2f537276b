"""On digits, each regime improves its own objective over the baseline in a few epochs."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import specrob
from specrob.data import load_data
from specrob.logic import CompiledProperty
from specrob.search import PGD, Region, fgsm
from specrob.network.model_file import build_model
from specrob.training.trainer import TrainConfig, Trainer
from tests.conftest import REPO

pytestmark = pytest.mark.slow

DATA = load_data("digits")
X, Y = torch.tensor(DATA.x_test), torch.tensor(DATA.y_test)


def train(regime: str, eps: float = 0.1, epochs: int = 8, **config):
    torch.manual_seed(0)
    prop = specrob.load(REPO / "specs" / "cr.rspec", eps=eps)["CR"]
    model = build_model(REPO / "examples" / "digits_mlp.py", 64, 10)
    t = Trainer(model, prop, DATA, TrainConfig(regime=regime, epochs=epochs, **config),
                progress=False)
    t.fit()
    return t


@pytest.fixture(scope="module")
def baseline():
    return train("baseline")


def pgd_security(t: Trainer) -> float:
    torch.manual_seed(1)
    x = t.compiled.worst_point(t.model, X, Y, PGD(steps=20, restarts=2))
    return t.compiled.holds(t.model, x, X, Y).float().mean().item()


def fgsm_accuracy(t: Trainer) -> float:
    x = t.compiled.worst_point(t.model, X, Y, fgsm())
    with torch.no_grad():
        return (t.model(x).argmax(-1) == Y).float().mean().item()


def test_baseline_learns_digits(baseline):
    assert baseline.metrics[-1]["test_accuracy"] > 0.9


def test_cr_constraint_training_raises_pgd_security(baseline):
    assert pgd_security(train("constraint")) > pgd_security(baseline) + 0.03


@pytest.mark.parametrize("logic", ["goedel", "product"])
def test_constraint_training_works_in_fuzzy_logics(baseline, logic):
    assert pgd_security(train("constraint", logic=logic)) > pgd_security(baseline)


def test_adversarial_training_raises_accuracy_under_fgsm(baseline):
    assert fgsm_accuracy(train("adversarial")) > fgsm_accuracy(baseline) + 0.03


def test_multi_step_adversarial_training_raises_pgd_security(baseline):
    assert pgd_security(train("adversarial", adv_steps=5)) > pgd_security(baseline) + 0.03


def test_fgsm_augmentation_raises_accuracy_under_fgsm(baseline):
    assert fgsm_accuracy(train("augmentation", augment="fgsm")) > fgsm_accuracy(baseline) + 0.03


def test_uniform_augmentation_lowers_the_loss_on_uniform_noise():
    def noisy_ce(t):
        torch.manual_seed(5)
        u = Region(0.3, math.inf).uniform(X, 10).reshape(-1, 64)
        with torch.no_grad():
            return F.cross_entropy(t.model(u), Y.repeat(10)).item()
    assert noisy_ce(train("augmentation", eps=0.3)) < noisy_ce(train("baseline", eps=0.3))


def test_cotraining_widens_l2_margins(baseline):
    """Tibo et al.'s objective is the area under the margin curve: fewer points have an
    adversarial example within l_2 distance 1."""
    l2 = CompiledProperty(specrob.loads("property P = CR(eps = 1.0, p = 2)\n")["P"], 64)

    def robust_fraction(t):
        torch.manual_seed(2)
        x = l2.worst_point(t.model, X, Y, PGD(steps=20))
        return l2.holds(t.model, x, X, Y).float().mean().item()
    assert robust_fraction(train("cotrain")) > robust_fraction(baseline) + 0.03


def mlp2(input_dim: int = 64, classes: int = 10):
    """Two ReLU layers (the Laplacian regime compares consecutive ones)."""
    return torch.nn.Sequential(torch.nn.Linear(input_dim, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, classes))


def train_net(regime: str, net_builder=mlp2, epochs: int = 8, **config):
    torch.manual_seed(0)
    prop = specrob.load(REPO / "specs" / "cr.rspec", eps=0.1)["CR"]
    t = Trainer(net_builder(), prop, DATA, TrainConfig(regime=regime, epochs=epochs, **config),
                progress=False)
    t.fit()
    return t


def test_cross_lipschitz_training_lowers_the_cross_lipschitz_term(baseline):
    from specrob.training.regularisers import cross_lipschitz

    def omega(t):
        x = X.clone().requires_grad_(True)
        return cross_lipschitz(t.model(x), x).item()
    hein = train("cross-lipschitz", lam=0.1)
    assert hein.metrics[-1]["test_accuracy"] > 0.85
    assert omega(hein) < 0.5 * omega(baseline)


def test_parseval_training_keeps_every_weight_near_a_tight_frame():
    def worst_spectral_norm(t):
        return max(torch.linalg.matrix_norm(p.detach(), 2).item()
                   for p in t.model.parameters() if p.dim() == 2)
    plain, parseval = train_net("baseline"), train_net("parseval", beta=0.01)
    assert parseval.metrics[-1]["test_accuracy"] > 0.85
    assert worst_spectral_norm(parseval) < 0.6 * worst_spectral_norm(plain)


def test_laplacian_training_lowers_the_change_of_smoothness_between_layers():
    from specrob.training.regularisers import smoothness_change

    def change(t):
        seen = []
        hooks = [m.register_forward_hook(lambda _m, _i, o: seen.append(o))
                 for m in t.model.modules() if isinstance(m, torch.nn.ReLU)]
        with torch.no_grad():
            t.model(X[:100])  # a batch of the size the authors train with
        for h in hooks:
            h.remove()
        return smoothness_change(seen, Y[:100], 10, 2).item()
    plain, lap = train_net("baseline"), train_net("laplacian", gamma=0.001)
    assert lap.metrics[-1]["test_accuracy"] > 0.9
    assert change(lap) < 0.2 * change(plain)


def test_the_laplacian_regime_refuses_a_network_with_one_relu():
    from specrob.errors import SpecrobError
    with pytest.raises(SpecrobError, match="applies 1 ReLU.*at least 2"):
        train("laplacian", epochs=1)
