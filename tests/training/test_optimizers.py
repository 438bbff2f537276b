"""The optimiser options (`--optimizer`, `--momentum`, `--dampening`, `--weight-decay`,
`--lr-decay`): Torch7's optim.sgd as Shaham et al.'s released scripts ran it, checked against
a transcription of that algorithm; exact resume with the rate schedule; earlier runs' folders
keep their identity."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from specrob.errors import SpecrobError
from specrob.training.config import TrainConfig
from specrob.training.trainer import learning_rate, make_optimizer
from tests.training.test_trainer import strip_time, trainer


def torch7_sgd(params, grads, state, *, lr, momentum, weight_decay, lr_decay):
    """Torch7 optim.sgd (torch/optim sgd.lua), dampening defaulting to the momentum, written
    out by hand as the oracle: dfdx += wd·x; the momentum buffer starts as the first dfdx and
    then is mom·buf + (1 - damp)·dfdx; x -= lr / (1 + nevals·lrd) · buf."""
    damp = momentum
    clr = lr / (1 + state.get("nevals", 0) * lr_decay)
    for i, (p, g) in enumerate(zip(params, grads)):
        d = g + weight_decay * p
        if momentum:
            if i not in state:
                state[i] = d.clone()
            else:
                state[i] = momentum * state[i] + (1 - damp) * d
            d = state[i]
        p -= clr * d
    state["nevals"] = state.get("nevals", 0) + 1


def test_sgd_with_dampening_and_rate_decay_is_torch7_optim_sgd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    mirror = [p.detach().clone() for p in model.parameters()]
    config = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, dampening=0.9,
                         weight_decay=1e-2, lr_decay=0.1)
    optimizer = make_optimizer(model, config)
    state: dict = {}
    for step in range(6):
        x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        grads = [p.grad.detach().clone() for p in model.parameters()]
        # the oracle's gradients are the model's at the same weights: keep them equal
        assert all(torch.allclose(a, b.detach()) for a, b in zip(mirror, model.parameters()))
        for group in optimizer.param_groups:  # what Trainer.step does
            group["lr"] = learning_rate(config, 0, step)
        optimizer.step()
        torch7_sgd(mirror, grads, state, lr=0.05, momentum=0.9, weight_decay=1e-2,
                   lr_decay=0.1)
    for a, b in zip(mirror, model.parameters()):
        assert torch.allclose(a, b.detach(), atol=1e-6)


def test_adam_stays_the_default_at_a_constant_rate():
    assert isinstance(make_optimizer(nn.Linear(2, 2), TrainConfig()), torch.optim.Adam)
    assert {learning_rate(TrainConfig(lr=0.01), e, s) for e, s in ((0, 0), (9, 5000))} == {0.01}


def test_the_step_schedule_is_multisteplr_per_epoch():
    """lr_steps / lr_gamma give torch's MultiStepLR rates, epoch by epoch (Tibo et al.: 1e-3,
    then 1e-4 from the 6th epoch)."""
    config = TrainConfig(lr=1e-3, lr_steps=(5,), lr_gamma=0.1)
    param = nn.Parameter(torch.zeros(1))
    reference = torch.optim.SGD([param], lr=1e-3)
    steps = torch.optim.lr_scheduler.MultiStepLR(reference, milestones=[5], gamma=0.1)
    for epoch in range(8):
        assert learning_rate(config, epoch, 100 * epoch) == pytest.approx(
            reference.param_groups[0]["lr"])
        reference.step()
        steps.step()
    both = TrainConfig(lr=0.1, lr_steps=(2, 4), lr_gamma=0.5, lr_decay=0.01)
    assert learning_rate(both, 4, 100) == pytest.approx(0.1 * 0.25 / 2)


def test_a_run_with_a_rate_decay_resumes_exactly(tmp_path):
    options = dict(optimizer="sgd", lr=0.05, momentum=0.9, dampening=0.9, weight_decay=1e-3,
                   lr_decay=1e-2, lr_steps=(2,), lr_gamma=0.5)
    whole = strip_time(trainer(epochs=3, **options).fit())
    first = trainer(tmp_path, epochs=1, **options)
    first.fit()
    first.close()
    again = trainer(tmp_path, epochs=3, **options)
    assert again.resume() and again.epoch == 1
    assert strip_time(again.fit()) == whole
    assert again.steps == 3 * 23  # 23 batches an epoch: the schedule's clock resumed too


def test_runs_made_before_the_options_existed_keep_their_identity():
    """A default config's identity has no optimiser keys (older run folders still resume);
    choosing them makes them part of it."""
    plain = TrainConfig().options()
    assert not {"optimizer", "momentum", "dampening", "weight_decay", "lr_decay", "lr_steps",
                "lr_gamma"} & set(plain)
    chosen = TrainConfig(optimizer="sgd", momentum=0.9).options()
    assert chosen["optimizer"] == "sgd" and chosen["momentum"] == 0.9


@pytest.mark.parametrize("options, message", [
    (dict(optimizer="rmsprop"), "optimizer.*adam \\| sgd"),
    (dict(momentum=0.9), "momentum.*0 with --optimizer adam"),
    (dict(optimizer="sgd", momentum=1.0), "momentum.*\\[0, 1\\)"),
    (dict(optimizer="sgd", dampening=-0.1), "dampening"),
    (dict(weight_decay=float("nan")), "weight_decay"),
    (dict(lr_decay=-1.0), "lr_decay"),
    (dict(lr_steps=(5, 3)), "lr_steps.*increasing"),
    (dict(lr_steps=(0,)), "lr_steps"),
    (dict(lr_steps=(5,), lr_gamma=0.0), "lr_gamma"),
])
def test_bad_optimiser_options_are_refused_with_the_option_named(options, message):
    with pytest.raises(SpecrobError, match=message):
        TrainConfig(**options)
