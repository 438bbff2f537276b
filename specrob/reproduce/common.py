"""What every paper reproduction shares: data with the Fashion-MNIST fallback, training with
resume, cached stages, figures, and the results page with the paper's claims checked.

A run writes `<out>/<paper>.md` (the page), `<out>/<paper>.json` (every number on it) and
`<out>/<paper>/*.png`; trained networks and finished stages live in `<work>` so an interrupted
run resumes where it stopped (the same command again).

Each paper is a package of three jobs that `run_paper` chains: `experiment` (budgets,
networks, training and measurements -> a plain results dict), `claims` (the paper's numbers
and claims, checked against the results) and `page` (the markdown page and its figures).
"""
from __future__ import annotations

from specrob.errors import SpecrobError

import dataclasses
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from specrob.data import DataError, Dataset, load_data

FASHION_HINT = ("Fashion-MNIST is not installed: `sudo apt-get install dataset-fashion-mnist` "
                "puts it in /usr/share/datasets/fashion-mnist (or pass --data fashion-mnist:DIR "
                "with the four IDX files, or --data digits to run on scikit-learn's digits)")


class ReproduceError(SpecrobError):
    """A reproduction that cannot run; the message says why and what to do."""


@dataclass(frozen=True)
class Options:
    """How to run a reproduction (the `specrob reproduce` options)."""

    smoke: bool = False           # a tiny budget that only checks the script end to end
    out: Path = Path("docs/results")
    work: Path = Path("runs/reproduce")
    data: str | None = None       # None: the paper's dataset (smoke: fall back to digits)
    seed: int = 0
    progress: bool = True
    fresh: bool = False           # forget trained networks and finished stages
    device: str = "cpu"           # where networks train and run: cpu | cuda | cuda:N | auto
    budget: str = "quick"         # quick (FULL: minutes) | paper (the paper's epochs and lr)
    epochs: int | None = None     # cut every net's epochs to at most this (a budget that fits)


@dataclass(frozen=True)
class Claim:
    """One statement of the paper, checked against our numbers."""

    text: str
    holds: bool
    ours: str  # the numbers that decide it

    def as_dict(self) -> dict:
        return {"claim": self.text, "holds": self.holds, "ours": self.ours}


@dataclass
class Run:
    """One paper's run: its data, networks, stages, figures and page."""

    paper: str            # short name: the page is <out>/<paper>.md
    title: str
    options: Options
    command: str          # the exact command that produced the page
    results: dict = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    exports: dict[str, dict[str, Path]] = field(default_factory=dict)  # see `train`

    def __post_init__(self):
        self.started = time.perf_counter()
        self.work = self.options.work / self.paper / (
            ("smoke" if self.options.smoke else "paper" if self.options.budget == "paper"
             else "full") + ("" if self.options.epochs is None
                             else f"-{self.options.epochs}ep"))
        if self.options.fresh and self.work.exists():
            import shutil
            shutil.rmtree(self.work)
        try:
            self.work.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReproduceError(f"--work {self.options.work}: cannot create {self.work} "
                                 f"({exc.strerror or exc}); choose a writable folder") from None
        from specrob.runfolder import lock_folder
        self._lock = lock_folder(self.work)  # one writer; released when the process ends
        self.figures = self.options.out / self.paper
        try:
            self.figures.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReproduceError(f"--out {self.options.out}: cannot create {self.figures} "
                                 f"({exc.strerror or exc}); choose a writable folder") from None
        self.notes: list[str] = []
        self.data_spec = self.options.data or ""
        from specrob.devices import resolve_device
        # where the networks train and the estimators run; cached networks and stages are
        # bound to it (random draws on a CUDA device follow another stream than on the CPU)
        self.device = torch.device(resolve_device(self.options.device))
        self.settings(device=str(self.device))

    def settings(self, **values) -> None:
        """Declare what the cached networks and stages depend on (the data, the budget). When
        a value differs from the one <work> was made with, the run is refused with the
        differing items named (`--fresh` starts over): a rerun never mixes results of other
        settings."""
        from specrob.runfolder import RunFolderError, bind_settings
        try:
            bind_settings(self.work, values)
        except RunFolderError as error:
            raise ReproduceError(str(error)) from None

    # --- messages -------------------------------------------------------------------------
    def log(self, message: str) -> None:
        if self.options.progress:
            from rich.console import Console
            Console(stderr=True, highlight=False).print(f"[dim]{self.paper}:[/dim] {message}")

    def note(self, message: str) -> None:
        """A remark for the page (a fallback, a budget cut) and the log."""
        self.notes.append(message)
        self.log(message)

    # --- data -----------------------------------------------------------------------------
    def dataset(self, preferred: str = "fashion-mnist", *, train: int | None = None,
                test: int | None = None) -> Dataset:
        """The paper's data, or --data. Without Fashion-MNIST the smoke mode falls back to
        digits (saying so); a full run stops with the install command."""
        spec = self.options.data or preferred
        try:
            data = load_data(spec)
        except DataError as error:
            if self.options.data is not None or not self.options.smoke:
                hint = f"\n{FASHION_HINT}" if spec.startswith("fashion") else ""
                raise ReproduceError(f"{error}{hint}") from None
            self.note(f"{FASHION_HINT}; smoke mode falls back to digits")
            spec, data = "digits", load_data("digits")
        self.data_spec = spec  # what `specrob verify --data` needs to find the same points
        data = shrink(data, train, test)
        self.settings(data={"name": data.name, "train": data.train_size, "test": data.test_size,
                            "seed": self.options.seed})
        return data

    # --- networks -------------------------------------------------------------------------
    def train(self, name: str, model: nn.Module, prop, data: Dataset, config, *,
              export: bool = False) -> nn.Module:
        """Train (or resume, or reload when finished) `model` under the property `prop` with
        `specrob.train`; the run folder is <work>/<name> (with model.onnx when `export`, and
        the regime's other networks, e.g. adapted.onnx, kept in `exports[name]`).
        Records the per-epoch metrics in results['training'][name]."""
        import specrob
        from specrob.runfolder import RunFolderError
        from specrob.training.trainer import TrainError
        start = time.perf_counter()
        config = dataclasses.replace(config, device=str(self.device))
        try:
            result = specrob.train(model, prop, data=data, config=config,
                                   out=self.work / name, progress=self.options.progress,
                                   export=export, log=lambda line: self.log(f"{name}: {line}"))
        except (TrainError, RunFolderError) as error:
            raise ReproduceError(f"{error} (or rerun with --fresh)") from None
        if result.resumed_after < config.epochs:
            self.seconds[f"train {name}"] = round(time.perf_counter() - start, 1)
        self.results.setdefault("training", {})[name] = result.metrics
        self.exports[name] = result.exports
        model.to(self.device).eval()  # (exporting to ONNX moved it to the CPU)
        return model

    def tensors(self, data: Dataset, split: str, count: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """`tensors` on the run's device."""
        return tensors(data, split, count, self.device)

    def record(self, results: dict, *, page_only: Sequence[str] = ()) -> None:
        """Keep an experiment's results for <paper>.json, all but the `page_only` keys (what
        only the page draws on: the data's shape, per-point samples for a figure)."""
        self.results.update({k: v for k, v in results.items() if k not in page_only})

    def stage(self, name: str, compute: Callable[[], dict]) -> dict:
        """A finished stage's JSON from <work>/stages, or compute and store it."""
        path = self.work / "stages" / f"{name}.json"
        from specrob.runfolder import read_json, write_json
        if path.exists():
            return read_json(path, f"delete {path} to recompute that stage, or rerun with "
                                   f"--fresh")
        start = time.perf_counter()
        with self._progress(name):
            value = compute()
        self.seconds[name] = round(time.perf_counter() - start, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, value, indent=1)
        return value

    def _progress(self, name: str):
        """A live line per stage while it runs (its name, a spinner, the time spent; gone when
        it ends), on stderr; nothing with progress off."""
        import contextlib
        if not self.options.progress:
            return contextlib.nullcontext()
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        bar = Progress(SpinnerColumn(), TextColumn(f"[dim]{self.paper}:[/dim] stage {name}"),
                       TimeElapsedColumn(), console=Console(stderr=True), transient=True)

        @contextlib.contextmanager
        def shown():
            with bar:
                bar.add_task(name, total=None)
                yield
        return shown()

    # --- the page -------------------------------------------------------------------------
    def figure(self, name: str) -> tuple[Path, str]:
        """The PNG's path and its link relative to the page."""
        return self.figures / f"{name}.png", f"{self.paper}/{name}.png"

    def section(self, markdown: str) -> None:
        self.sections.append(markdown.strip())

    def claim(self, text: str, holds: bool, ours: str) -> None:
        self.claims.append(Claim(text, bool(holds), ours))

    def finish(self, *, paper_ref: str, budget: str, summary: str) -> Path:
        """Write <out>/<paper>.md and <out>/<paper>.json."""
        total = time.perf_counter() - self.started
        out = self.options.out
        out.mkdir(parents=True, exist_ok=True)
        agreed = sum(c.holds for c in self.claims)
        lines = [f"# {self.title}", "", paper_ref, "",
                 "Produced by", "", "```", self.command, "```", "",
                 f"Budget: {budget}", "",
                 f"Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s), "
                 f"torch {torch.__version__}; this run took {total / 60:.1f} min "
                 f"(stages finished by an earlier run of the same command are reused).", ""]
        if self.options.smoke:
            lines += ["**Smoke run**: a tiny budget that only checks the script end to end; "
                      "the numbers mean nothing.", ""]
        lines += [f"- {n}" for n in self.notes] + ([""] if self.notes else [])
        lines += ["## Summary", "", summary.strip(), "",
                  f"The paper's claims below: {agreed} of {len(self.claims)} hold in our run.", ""]
        for body in self.sections:
            lines += [body, ""]
        lines += ["## The paper's claims, checked", "",
                  table(["claim (paper)", "ours", "holds here"],
                        [[c.text, c.ours, "yes" if c.holds else "**no**"] for c in self.claims]),
                  ""]
        page = out / f"{self.paper}.md"
        from specrob.runfolder import json_default, write_json, write_text
        write_text(page, "\n".join(lines))
        record = {"paper": self.paper, "command": self.command, "smoke": self.options.smoke,
                  "minutes": round(total / 60, 2), "seconds": self.seconds, "notes": self.notes,
                  "claims": [c.as_dict() for c in self.claims], **self.results}
        write_json(out / f"{self.paper}.json", record, indent=1, default=json_default)
        self.log(f"wrote {page} ({total / 60:.1f} min)")
        self.release()
        return page

    def release(self) -> None:
        """Let go of <work> (its lock): the run is finished."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.close()
            self._lock = None


def run_paper(paper: str, options: Options, command: str, *, experiment, claims, page) -> Path:
    """One paper's reproduction from its three modules; returns the page it wrote.

    `experiment`: FULL and SMOKE budgets, PAGE_ONLY (result keys kept off the JSON) and
    `measure(run, budget) -> dict`, the results; `claims`: PAPER_REF and `check(run, results,
    budget)`, which records the paper's claims; `page`: TITLE, `write(run, results, budget)`
    (sections and figures), `budget_text(results, budget)` and `summary(run, results, budget)`
    (read after the claims are checked)."""
    if options.budget == "paper" and not options.smoke \
            and getattr(experiment, "PAPER", None) is None:
        raise ReproduceError(f"--budget paper: not available for {paper} yet (its page says "
                             f"which budget it ran); use the default --budget quick")
    budget = experiment.SMOKE if options.smoke else \
        experiment.PAPER if options.budget == "paper" else experiment.FULL
    if options.epochs is not None:
        budget, cut = cut_epochs(budget, options.epochs)
    run = Run(paper, page.TITLE, options, command)
    if options.epochs is not None:
        run.note(f"--epochs {options.epochs}: every net trains at most {options.epochs} "
                 f"epoch(s) ({cut}); all else is the {options.budget} budget's (a "
                 f"learning-rate step scheduled after epoch {options.epochs} is not reached)")
    results = experiment.measure(run, budget)
    run.record(results, page_only=experiment.PAGE_ONLY)
    claims.check(run, results, budget)
    page.write(run, results, budget)
    return run.finish(paper_ref=claims.PAPER_REF, budget=page.budget_text(results, budget),
                      summary=page.summary(run, results, budget))


def cut_epochs(budget, most: int):
    """`budget` with its `epochs` (a count, or a tuple of counts per net) cut to at most
    `most`, and a phrase saying what was cut ("of 120")."""
    full = budget.epochs
    if isinstance(full, tuple):
        cut = tuple(min(e, most) for e in full)
        said = f"of {', '.join(map(str, full))}"
    else:
        cut, said = min(full, most), f"of {full}"
    return dataclasses.replace(budget, epochs=cut), said


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """The mean of a claim's numbers over seeds and its standard error (sample sd / sqrt(n);
    0 for one value)."""
    import statistics
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0)


def describe_data(data: Dataset) -> dict:
    """The facts about the data a page states, as plain values."""
    return {"name": data.name, "train": data.train_size, "test": data.test_size,
            "input_dim": data.input_dim, "classes": data.classes}


def shrink(data: Dataset, train: int | None, test: int | None) -> Dataset:
    """The first `train` / `test` points of each split (None: all)."""
    if train is None and test is None:
        return data
    return Dataset(data.name, data.x_train[:train], data.y_train[:train],
                   data.x_test[:test], data.y_test[:test], data.shape, data.classes)


def tensors(data: Dataset, split: str, count: int | None = None,
            device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of a split as float32 / int64 tensors on `device`, the first `count` points."""
    x = getattr(data, f"x_{split}")[:count]
    y = getattr(data, f"y_{split}")[:count]
    return (torch.tensor(np.asarray(x), dtype=torch.float32, device=device),
            torch.tensor(np.asarray(y), dtype=torch.long, device=device))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    """The fraction of rows the model classifies as y."""
    from specrob.numerics import correct
    return correct(model, x, y, batch) / max(len(y), 1)


def step_cpu_seconds(setups: Mapping[str, tuple[nn.Module, Any, Any]], x: torch.Tensor,
                     y: torch.Tensor, *, repeats: int = 9, warmup: int = 2
                     ) -> dict[str, list[float]]:
    """CPU seconds (this process, `time.process_time`) of one training step per setup: the
    regime's loss on the batch (x, y), backward and an Adam step. `setups` maps a name to
    (network, property, TrainConfig); the setups run interleaved round by round (after
    `warmup` untimed rounds), so machine load falls on all of them alike. Each network is
    trained a little by the timing: pass copies. For claims about training time, measured
    where wall-clock time flips with machine load."""
    from specrob.logic.compiled import CompiledProperty
    from specrob.training.regimes import REGIMES, Context
    steps = {}
    for name, (net, prop, config) in setups.items():
        ctx = Context(CompiledProperty(prop, x.shape[-1], config.logic, config.xi), config)
        regime = REGIMES[config.regime]()
        regime.setup(net, ctx, x.shape[-1])
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)

        def step(net=net, regime=regime, ctx=ctx, optimizer=optimizer) -> None:
            net.train()
            optimizer.zero_grad(set_to_none=True)
            loss, _ = regime.loss(net, x, y, ctx)
            loss.backward()
            optimizer.step()
        steps[name] = step
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(warmup + repeats):
        for name, step in steps.items():
            start = time.process_time()
            step()
            if round_ >= warmup:
                seconds[name].append(time.process_time() - start)
    return seconds


# --- markdown ---------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub markdown table."""
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(cell(h) for h in headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage ('—' for missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.{digits}f}"


def pct_ci(estimate: dict, digits: int = 1) -> str:
    """An Estimate's dict as 'v [lo, hi]' in percent."""
    return (f"{pct(estimate['value'], digits)} [{pct(estimate['low'], digits)}, "
            f"{pct(estimate['high'], digits)}]")


# --- figures ----------------------------------------------------------------------------
def plot_curves(path: Path, x: Sequence[float], series: Mapping[str, Sequence[float]], *,
                xlabel: str, ylabel: str, title: str,
                bands: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
                logy: bool = False, ylim: tuple[float, float] | None = None,
                xs: dict[str, Sequence[float]] | None = None) -> None:
    """One line per series (with an optional confidence band), saved as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    styles = ["-", "--", "-.", ":"]
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=110)
    for k, (label, ys) in enumerate(series.items()):
        xx = (xs or {}).get(label, x)
        ax.plot(xx, ys, styles[k % len(styles)], marker="o", markersize=3, label=label)
        if bands and label in bands:
            lo, hi = bands[label]
            ax.fill_between(xx, lo, hi, alpha=0.15)
    if logy:
        ax.set_yscale("log")
    if ylim:
        ax.set_ylim(*ylim)
    label_axes(ax, xlabel=xlabel, ylabel=ylabel, title=title)
    save_figure(fig, path)


def label_axes(ax, *, xlabel: str, ylabel: str, title: str, fontsize: int = 10) -> None:
    """Axis labels, title, a light grid and the legend: every figure of the pages alike."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=fontsize)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def save_figure(fig, path: Path) -> None:
    """Lay out, write the PNG (creating its folder) and free the figure."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


