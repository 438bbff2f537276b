"""`specrob.constraint_loss(spec, model, ...)`: unknown options and names are errors naming the closest valid one;
image-shaped batches and per-sample reductions work (shared case newcomer/api_silent_kwargs)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import specrob
from tests.conftest import REPO


@pytest.fixture
def spec():
    return specrob.load(REPO / "specs" / "cr.rspec", eps=0.1)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


@pytest.mark.parametrize("options, says", [
    ({"stpes": 5}, "did you mean 'steps'?"),
    ({"restart": 2}, "did you mean 'restarts'?"),
    ({"samples": 3}, "unknown option 'samples'"),  # a sample-search option given to pgd
])
def test_unknown_options_are_refused_with_the_nearest(spec, options, says):
    with pytest.raises(TypeError, match=says):
        specrob.constraint_loss(spec, model(), **options)


def test_unknown_names_and_logics_are_refused(spec):
    with pytest.raises(KeyError, match="no property or score 'CRR' in .*cr.rspec; did you mean 'CR'"):
        specrob.constraint_loss(spec, model(), property="CRR")
    with pytest.raises(KeyError, match="did you mean 'CR'"):
        spec["CRR"]
    with pytest.raises(ValueError, match="unknown logic 'dl3'"):
        specrob.constraint_loss(spec, model(), logic="dl3")


def test_image_batches_and_per_sample_losses(spec):
    net = model()
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    per_sample = specrob.constraint_loss(spec, net, steps=3, random_start=False, reduction="none")(x, y)
    assert per_sample.shape == (6,) and (per_sample >= 0).all()
    flat = specrob.constraint_loss(spec, net, steps=3, random_start=False, reduction="none")(x.reshape(6, 64), y)
    assert torch.allclose(per_sample, flat)  # the same points, flat or image-shaped
    mean = specrob.constraint_loss(spec, net, steps=3, random_start=False)(x, y)
    assert torch.allclose(mean, per_sample.mean())
    mean.backward()
    assert net[1].weight.grad is not None


def test_spec_loss_is_the_constraint_loss_of_the_api():
    """`spec.loss(model, ...)` (the README of earlier versions, shared case
    newcomer/api_silent_kwargs_probe.py) is `specrob.constraint_loss(spec, model, ...)`:
    the same value on the same batch, and the same refusals."""
    torch.manual_seed(0)
    net = model()
    spec = specrob.load(REPO / "specs" / "cr.rspec", eps=0.1)
    x, y = torch.rand(5, 64), torch.tensor([0, 1, 2, 3, 4])
    a = spec.loss(net, steps=3, random_start=False)(x, y)
    b = specrob.constraint_loss(spec, net, steps=3, random_start=False)(x, y)
    assert torch.equal(a, b)
    with pytest.raises(TypeError, match="stpes"):
        spec.loss(net, stpes=5)


def test_a_model_that_fails_on_the_given_inputs_is_reported_with_their_shape():
    """Images given to a model that takes flat rows: the model's error, the shape and the fix
    (a SpecrobError; still a RuntimeError for callers that catch those)."""
    import torch

    from specrob.logic.compiled import ModelInputError
    spec = specrob.load(REPO / "specs" / "cr.rspec", eps=0.1)
    rows_only = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    constraint = specrob.constraint_loss(spec, rows_only, steps=2)
    x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 10, (4,))
    with pytest.raises(ModelInputError, match=r"shape \(4, 1, 8, 8\).*mat1 and mat2") as info:
        constraint(x, y)
    assert isinstance(info.value, specrob.SpecrobError) and isinstance(info.value, RuntimeError)
    assert constraint(x.reshape(4, 64), y).item() >= 0  # rows work
