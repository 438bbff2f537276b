"""The shared machinery of `specrob reproduce`: data fallback, cached stages, the page."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import specrob.data
from specrob.cli import app
from specrob.reproduce import PAPERS, paper_module
from specrob.reproduce.common import (
    Options,
    ReproduceError,
    Run,
    pct,
    pct_ci,
    plot_curves,
    run_paper,
    shrink,
    table,
)


@pytest.fixture
def no_fashion(monkeypatch, tmp_path):
    """Pretend the Debian Fashion-MNIST package is not installed."""
    monkeypatch.setattr(specrob.data, "FASHION_MNIST_DIR", tmp_path / "absent")


def make_run(tmp_path, **options) -> Run:
    opts = Options(out=tmp_path / "out", work=tmp_path / "work", progress=False, **options)
    return Run("paper", "A paper", opts, "specrob reproduce paper")


def test_a_table_is_github_markdown_and_escapes_pipes():
    assert table(["a", "b"], [[1, "x|y"]]).splitlines() == ["| a | b |", "|---|---|",
                                                            "| 1 | x\\|y |"]


def test_percentages_round_and_show_missing_values_as_a_dash():
    assert pct(0.8766) == "87.7"
    assert pct(None) == "—"
    assert pct_ci({"value": 0.5, "low": 0.4, "high": 0.6}) == "50.0 [40.0, 60.0]"


def test_smoke_mode_falls_back_to_digits_and_says_how_to_install_fashion(tmp_path, no_fashion):
    run = make_run(tmp_path, smoke=True)
    data = run.dataset("fashion-mnist", train=50, test=20)
    assert data.name == "digits" and data.train_size == 50 and data.test_size == 20
    assert run.data_spec == "digits"
    assert any("apt-get install dataset-fashion-mnist" in n for n in run.notes)


def test_a_full_run_without_fashion_stops_with_the_install_command(tmp_path, no_fashion):
    with pytest.raises(ReproduceError, match="apt-get install dataset-fashion-mnist"):
        make_run(tmp_path).dataset("fashion-mnist")


def test_an_explicit_data_option_is_used_and_never_replaced(tmp_path):
    run = make_run(tmp_path, data="digits")
    assert run.dataset("fashion-mnist").name == "digits"
    with pytest.raises(ReproduceError, match="nope"):
        make_run(tmp_path, data="nope.npz", smoke=True).dataset("fashion-mnist")


def test_shrink_keeps_the_first_points_of_each_split():
    data = specrob.data.load_data("digits")
    small = shrink(data, 10, 5)
    assert (small.x_train == data.x_train[:10]).all() and (small.y_test == data.y_test[:5]).all()
    assert shrink(data, None, None) is data


def test_a_finished_stage_is_read_back_instead_of_recomputed(tmp_path):
    calls = []
    compute = lambda: calls.append(1) or {"value": 3}
    assert make_run(tmp_path).stage("s", compute) == {"value": 3}
    assert make_run(tmp_path).stage("s", compute) == {"value": 3}
    assert len(calls) == 1
    fresh = make_run(tmp_path, fresh=True)
    fresh.stage("s", compute)
    assert len(calls) == 2


def test_a_stage_shows_its_progress_on_stderr_and_returns_its_value(tmp_path, capfd):
    """With progress on, a running stage is a live line (name, spinner, time) on stderr; its
    value is returned and stored as without it."""
    import dataclasses
    run = make_run(tmp_path)
    run.options = dataclasses.replace(run.options, progress=True)
    assert run.stage("margins-noreg", lambda: {"value": 7}) == {"value": 7}
    assert "margins-noreg" not in capfd.readouterr().out  # nothing on stdout
    run.release()
    assert make_run(tmp_path).stage("margins-noreg", lambda: {"value": 8}) == {"value": 7}


def test_finish_writes_the_page_and_its_numbers(tmp_path):
    run = make_run(tmp_path)
    run.results["accuracy"] = 0.9
    run.section("## Table 1\n\n" + table(["net", "acc"], [["a", "90.0"]]))
    run.claim("accuracy is high", True, "90%")
    run.claim("robustness is high", False, "10%")
    page = run.finish(paper_ref="Ref.", budget="1 epoch", summary="Honest.")
    text = page.read_text()
    assert "specrob reproduce paper" in text and "## Table 1" in text
    assert "1 of 2 hold" in text and "**no**" in text
    record = json.loads((tmp_path / "out" / "paper.json").read_text())
    assert record["accuracy"] == 0.9 and [c["holds"] for c in record["claims"]] == [True, False]


def test_run_paper_chains_experiment_claims_and_page(tmp_path):
    """The results reach the claims and the page; the page-only ones stay off the JSON."""
    from types import SimpleNamespace
    seen = []
    experiment = SimpleNamespace(
        FULL="full", SMOKE="smoke", PAGE_ONLY=("dataset",),
        measure=lambda run, budget: {"accuracy": 0.75, "dataset": {"name": "toy"}})
    claims = SimpleNamespace(
        PAPER_REF="Ref.",
        check=lambda run, results, budget: run.claim("accuracy is high",
                                                     results["accuracy"] > 0.5, "75%"))

    def write(run, results, budget):
        seen.append(budget)
        run.section(f"## Data\n\n{results['dataset']['name']}")

    page = SimpleNamespace(
        TITLE="A paper", write=write,
        budget_text=lambda results, budget: f"the {budget} budget",
        summary=lambda run, results, budget: f"{len(run.claims)} claim checked.")
    options = Options(smoke=True, out=tmp_path / "out", work=tmp_path / "work", progress=False)
    path = run_paper("paper", options, "specrob reproduce paper", experiment=experiment,
                     claims=claims, page=page)
    text = path.read_text()
    assert seen == ["smoke"] and "## Data\n\ntoy" in text
    assert "the smoke budget" in text and "1 claim checked." in text
    record = json.loads((tmp_path / "out" / "paper.json").read_text())
    assert record["accuracy"] == 0.75 and "dataset" not in record
    assert record["claims"] == [{"claim": "accuracy is high", "holds": True, "ours": "75%"}]


def test_the_paper_budget_runs_where_a_paper_defines_it_and_is_refused_elsewhere(tmp_path):
    """--budget paper takes the experiment's PAPER budget into <work>/<paper>/paper; a paper
    without one, or --smoke with it, is a clear error before any work."""
    from types import SimpleNamespace

    from specrob.reproduce.common import ReproduceError
    seen = []
    experiment = SimpleNamespace(FULL="full", SMOKE="smoke", PAPER="paper", PAGE_ONLY=(),
                                 measure=lambda run, budget: seen.append(budget) or {})
    claims = SimpleNamespace(PAPER_REF="Ref.", check=lambda run, results, budget: None)
    page = SimpleNamespace(TITLE="A paper", write=lambda run, results, budget: None,
                           budget_text=lambda results, budget: budget,
                           summary=lambda run, results, budget: "")
    options = Options(out=tmp_path / "out", work=tmp_path / "work", progress=False,
                      budget="paper")
    run_paper("paper", options, "specrob reproduce paper --budget paper",
              experiment=experiment, claims=claims, page=page)
    assert seen == ["paper"] and (tmp_path / "work" / "paper" / "paper").is_dir()
    del experiment.PAPER
    with pytest.raises(ReproduceError, match="--budget paper: not available"):
        run_paper("paper", options, "c", experiment=experiment, claims=claims, page=page)
    with pytest.raises(specrob.UsageError, match="give one of them"):
        specrob.reproduce("casadio", smoke=True, budget="paper", work=tmp_path / "w")


def test_epochs_cut_every_nets_budget_into_its_own_work_folder(tmp_path):
    """--epochs N: at most N epochs per net (a count or one per net), the rest of the budget
    unchanged, said on the page, in <work>/<paper>/<budget>-<N>ep (never mixed with the
    uncut budget's networks)."""
    import dataclasses
    from types import SimpleNamespace as budget

    from specrob.reproduce.common import cut_epochs

    @dataclasses.dataclass(frozen=True)
    class Budget:
        epochs: int | tuple[int, ...]
        lr: float = 0.1

    assert cut_epochs(Budget(120), 20) == (Budget(20), "of 120")
    assert cut_epochs(Budget(5), 20) == (Budget(5), "of 5")
    assert cut_epochs(Budget((100, 205, 8)), 50) == (Budget((50, 50, 8)), "of 100, 205, 8")
    seen = []
    experiment = budget(FULL=Budget(8), SMOKE=Budget(1), PAPER=Budget(120), PAGE_ONLY=(),
                        measure=lambda run, b: seen.append(b) or {})
    claims = budget(PAPER_REF="Ref.", check=lambda run, results, b: None)
    page = budget(TITLE="A paper", write=lambda run, results, b: None,
                  budget_text=lambda results, b: f"{b.epochs} epochs",
                  summary=lambda run, results, b: "")
    options = Options(out=tmp_path / "out", work=tmp_path / "work", progress=False,
                      budget="paper", epochs=30)
    written = run_paper("paper", options, "specrob reproduce paper --budget paper --epochs 30",
                        experiment=experiment, claims=claims, page=page)
    assert seen == [Budget(30)] and (tmp_path / "work" / "paper" / "paper-30ep").is_dir()
    assert "at most 30 epoch(s) (of 120)" in written.read_text()
    with pytest.raises(specrob.UsageError, match="--epochs 0"):
        specrob.reproduce("shaham", epochs=0, work=tmp_path / "w")


def test_every_paper_is_a_package_of_its_three_jobs():
    for name in PAPERS:
        package = paper_module(name)
        assert callable(package.run)
        for module, names in (("experiment", ("FULL", "SMOKE", "PAGE_ONLY", "measure")),
                              ("claims", ("PAPER_REF", "check")),
                              ("page", ("TITLE", "write", "budget_text", "summary"))):
            job = getattr(package, module)
            assert job.__doc__ and all(hasattr(job, n) for n in names), f"{name}.{module}"


def test_curves_are_saved_as_png(tmp_path):
    path = tmp_path / "f.png"
    plot_curves(path, [0, 1], {"a": [1, 0.5], "b": [1, 0.2]}, bands={"a": ([0.9, 0.4], [1, 0.6])},
                xlabel="eps", ylabel="security", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cli_names_the_papers_for_an_unknown_one():
    result = CliRunner().invoke(app, ["reproduce", "casadi"])
    assert result.exit_code == 2
    assert "did you mean 'casadio'" in result.output and "lassance" in result.output


def test_the_cli_turns_a_missing_dataset_into_a_clear_error(tmp_path, no_fashion):
    result = CliRunner().invoke(app, ["reproduce", "casadio", "--work", str(tmp_path),
                                      "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2
    assert "apt-get install dataset-fashion-mnist" in result.output
    assert "Traceback" not in result.output


def test_cached_work_of_other_settings_is_refused_not_mixed_in(tmp_path):
    run = make_run(tmp_path)
    run.settings(budget={"epochs": 1})
    run.stage("s", lambda: {"value": 1})
    run._lock.close()
    again = make_run(tmp_path)
    again.settings(budget={"epochs": 1})  # same settings: the stage is reused
    assert again.stage("s", lambda: {"value": 2}) == {"value": 1}
    again._lock.close()
    other = make_run(tmp_path)
    with pytest.raises(ReproduceError, match="another budget.*--fresh"):
        other.settings(budget={"epochs": 2})
    other._lock.close()
    fresh = make_run(tmp_path, fresh=True)
    fresh.settings(budget={"epochs": 2})
    assert fresh.stage("s", lambda: {"value": 2}) == {"value": 2}


def test_the_data_a_run_used_is_part_of_its_settings(tmp_path):
    first = make_run(tmp_path)
    first.dataset("digits", train=100)
    first._lock.close()
    with pytest.raises(ReproduceError, match="another data"):
        make_run(tmp_path).dataset("digits", train=200)


def test_a_second_process_on_the_same_work_folder_is_refused(tmp_path):
    run = make_run(tmp_path)  # holds the lock while it lives
    code = ("import sys; from specrob.runfolder import lock_folder; lock_folder(sys.argv[1])")
    import subprocess
    import sys
    work = next((tmp_path).rglob(".lock")).parent
    result = subprocess.run([sys.executable, "-c", code, str(work)], capture_output=True,
                            text=True)
    assert result.returncode != 0 and "in use by another specrob run" in result.stderr
    run._lock.close()


def test_a_cut_stage_file_is_named_with_the_way_out(tmp_path):
    run = make_run(tmp_path)
    run.stage("s", lambda: {"value": 1})
    path = run.work / "stages" / "s.json"
    path.write_text(path.read_text()[:5])
    from specrob.errors import SpecrobError
    with pytest.raises(SpecrobError, match=r"s\.json: corrupt JSON.*--fresh"):
        run.stage("s", lambda: {"value": 2})
