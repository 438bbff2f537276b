"""`specrob reproduce lassance` (seed 004): the smoke run end to end, and its pure helpers."""
from __future__ import annotations

import itertools
import json
import math

import pytest

import torch

from specrob.reproduce import lassance
from specrob.reproduce.common import Options
from specrob.reproduce.lassance import claims, experiment, page
from tests.conftest import explicit_devices


# --- pure helpers -----------------------------------------------------------------------------
def test_build_net_flat_inputs_same_init_per_seed():
    for n in (784, 64):
        net = experiment.build_net(n, 10, hidden=32, seed=3)
        assert net(torch.rand(5, n)).shape == (5, 10)
    a, b = experiment.build_net(64, 10, seed=1), experiment.build_net(64, 10, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_first_at_or_below_needs_the_tail_to_stay_below():
    xs = [1, 2, 3, 4, 5]
    assert claims.first_at_or_below(xs, [0.3, 0.0, 0.1, 0.0, 0.0], 0.0) == 4
    assert claims.first_at_or_below(xs, [0.3, 0.2, 0.1, 0.05, 0.01], 0.05) == 4
    assert claims.first_at_or_below(xs, [0.3, 0.2, 0.1, 0.1, 0.1], 0.0) is None


def test_saturation_radius_and_shape():
    radii = [0.1, 0.3, 1.0, 3.0]
    assert claims.saturation_radius(radii, [0.1, 0.5, 0.95, 1.0]) == 1.0
    assert claims.saturation_radius(radii, [1.0, 1.0, 1.0, 1.0]) == 0.1
    assert claims.rises_and_saturates([0.1, 0.5, 0.98, 1.0]) == (True, True)
    assert claims.rises_and_saturates([1.0, 1.0, 1.02, 1.03]) == (False, True)
    assert claims.rises_and_saturates([0.1, 0.2, 0.4, 0.8]) == (True, False)


def test_order_and_quantiles():
    assert claims.order({"a": 2.0, "b": 1.0, "c": 3.0}) == ["b", "a", "c"]
    assert claims.order({"a": 2.0, "b": 1.0, "c": 3.0}, reverse=True) == ["c", "a", "b"]
    per_centre = torch.tensor([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    q = experiment.per_centre_quantiles(per_centre, qs=(0.5,))
    assert q == {"q50": [1.0, 2.0]}


def test_alpha_grid_holds_the_table_values():
    grid = experiment.alpha_grid()
    assert grid == sorted(grid) and len(set(grid)) == len(grid)
    assert all(a in grid for a in experiment.TABLE_ALPHAS)


def test_incompatibility_matches_a_brute_force_count():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(40, 6, generator=gen)
    y = torch.randint(0, 3, (40,), generator=gen)
    out = experiment.incompatibility(x, y)
    json.dumps(out, allow_nan=False)  # plain JSON: d = inf is written as "inf"
    d = torch.cdist(x, x, p=math.inf)
    i, j = torch.triu_indices(40, 40, 1)
    distinct = y[i] != y[j]
    dist = d[i, j][distinct]
    assert out["pairs"] == int(distinct.sum())
    a = out["alphas"].index(2.0)
    for k, name in enumerate(out["distances"]):
        limit = min(float(name), 1 / 2.0)  # gap 1 (l_inf one-hot) / alpha
        assert out["incompatible"][a][k] == int((dist < limit).sum())


# --- the smoke run ----------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_run_page_figures_json_and_rerun(tmp_path):
    options = Options(smoke=True, out=tmp_path / "out", work=tmp_path / "work", progress=False)
    with explicit_devices():  # every tensor on the run's device: the --device oracle
        page = lassance.run(options, "specrob reproduce lassance --smoke")
    text = page.read_text()
    for heading in ("## Figure 1", "## Figure 3", "## Figure 4", "## Figure 5",
                    "## Clean accuracy (cf. the paper's Table 2)", "## The paper's claims"):
        assert heading in text
    for paper_number in ("11.9 / 31.6", "12.8 / 18.8", "20.9 / 28.5", "10.2 / 30.5",
                         "13.2 / 31.3", "greater than 4", "d = 0.3"):
        assert paper_number in text
    pngs = sorted((tmp_path / "out" / "lassance").glob("*.png"))
    assert {p.stem for p in pngs} >= {"fig1-incompatibility", "fig4-noise", "fig5-alpha-lim"}
    assert all(p.stat().st_size > 1000 for p in pngs)

    record = json.loads((tmp_path / "out" / "lassance.json").read_text())
    for key in ("accuracy", "alpha_lim", "noise", "incompatibility", "training", "claims"):
        assert key in record
    assert set(record["accuracy"]) == set(experiment.NETS)
    for acc in record["accuracy"].values():
        assert 0.0 <= acc["train"] <= 1.0 and 0.0 <= acc["test"] <= 1.0
    for curve in record["alpha_lim"].values():
        alpha = curve["alpha_lim"]
        assert len(alpha) == len(experiment.SMOKE.radii)
        assert all(v >= 0 for v in alpha)
        assert all(a <= b + 1e-9 for a, b in itertools.pairwise(alpha))  # running maxima
        assert all(m <= a + 1e-9 for m, a in zip(curve["q50"], alpha))  # median <= max
    for inc in record["incompatibility"].values():
        for row in inc["fraction"]:
            assert all(0.0 <= v <= 1.0 for v in row)
            assert all(a <= b + 1e-12 for a, b in itertools.pairwise(row))  # non-decreasing in d
        for k in range(len(inc["distances"])):
            col = [row[k] for row in inc["fraction"]]
            assert all(a >= b - 1e-12 for a, b in itertools.pairwise(col))  # non-increasing in alpha
    assert "digits" in record["incompatibility"]
    for noise in record["noise"].values():
        assert all(0.0 <= p["value"] <= 1.0 for p in noise["curve"])
    assert len(record["claims"]) == 8
    assert {"parseval", "laplacian", "l2nn"} <= set(record["training"])

    again = lassance.run(options, "specrob reproduce lassance --smoke")
    rerun = json.loads((tmp_path / "out" / "lassance.json").read_text())
    assert not any(k.startswith("train ") for k in rerun["seconds"])  # networks reloaded
    assert rerun["accuracy"] == record["accuracy"]
    assert rerun["alpha_lim"] == record["alpha_lim"]
    assert again.read_text().split("## Summary")[1] == text.split("## Summary")[1]


def test_the_paper_budget_trains_as_the_authors_code_trains_its_nets():
    """--budget paper: Vanilla and LocalLipschitz on laplacian_networks' schedule (SGD 0.9,
    weight decay 5e-4, batch 100, lr 0.1 then 0.001 after 50 epochs), PGD on Madry et al.'s
    (weight decay 2e-4, batch 128, 205 epochs, x0.1 after 102 and 154, 10 steps)."""
    from types import SimpleNamespace

    from specrob.data import load_data
    from specrob.reproduce.lassance.experiment import PAPER, train_nets
    seen = {}
    run = SimpleNamespace(options=SimpleNamespace(seed=0),
                          train=lambda name, net, prop, data, config: seen.setdefault(name,
                                                                                      config))
    train_nets(run, load_data("digits"), PAPER)
    v, p, c = seen["vanilla"], seen["pgd"], seen["lipschitz"]
    for config in (v, c):
        assert (config.optimizer, config.momentum, config.weight_decay, config.batch_size,
                config.lr, config.lr_steps, config.lr_gamma, config.epochs) == \
            ("sgd", 0.9, 5e-4, 100, 0.1, (50,), 0.01, 100)
    assert (p.optimizer, p.weight_decay, p.batch_size, p.lr_steps, p.lr_gamma, p.epochs,
            p.adv_steps) == ("sgd", 2e-4, 128, (102, 154), 0.1, 205, 10)
    # Parseval and Laplacian: the same script as Vanilla with --beta 0.01 / --gamma, -m 2
    par, lap, l2nn = seen["parseval"], seen["laplacian"], seen["l2nn"]
    for config in (par, lap, l2nn):
        assert (config.optimizer, config.weight_decay, config.lr_steps, config.epochs) == \
            ("sgd", 5e-4, (50,), 100)
    assert (par.regime, par.beta) == ("parseval", 0.01)
    assert (lap.regime, lap.power) == ("laplacian", 2)
    assert l2nn.regime == "baseline"
    text = page.budget_text({"dataset": {"input_dim": 784, "classes": 10, "train": 60000,
                                         "name": "fashion-mnist", "test": 10000},
                             "incompatibility": {}}, PAPER)
    assert "SGD as the authors' code trains its nets" in text and "Adam" not in text


def test_the_compared_methods_leave_the_work_folders_settings_as_they_were():
    """Adding Parseval, Laplacian and L2NN adds networks only: a work folder made before them
    (bound to the other budget fields) still resumes."""
    from dataclasses import asdict

    from specrob.reproduce.lassance.experiment import ADDED, PAPER, Budget
    bound = {k for k in asdict(PAPER) if k not in ADDED}
    assert set(ADDED) == set(asdict(PAPER)) - bound
    assert "epochs" in bound and "compared_epochs" not in bound
    assert {f.name for f in Budget.__dataclass_fields__.values()} >= set(ADDED)
