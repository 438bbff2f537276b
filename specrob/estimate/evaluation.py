"""`specrob eval`: every property and score of a spec, estimated on a model and data.

Results are plain data (results.json), written after each declaration, so an interrupted
run keeps its finished work and a rerun with the same settings continues where it stopped.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, cast

import torch
from torch import nn

from specrob.data import Dataset, load_data, subset
from specrob.errors import SpecrobError
from specrob.estimate.config import EvalConfig
from specrob.estimate import security
from specrob.lang import ir
from specrob.lang.walk import lipschitz_shape, mentions
from specrob.lang.params import constant, resolve_params
from specrob.numerics import generator, norm_name
from specrob.options import shard_of


class CentreError(SpecrobError):
    """Centres a declaration cannot use (e.g. outside its domain); the message lists them."""


def domain_of(decl: ir.Property | ir.Score, input_dim: int) -> tuple[float, float]:
    """The declaration's input domain box [low, high]^n as two numbers."""
    params = resolve_params(decl, input_dim)
    return constant(decl.domain.low, params), constant(decl.domain.high, params)


def check_inside(x: torch.Tensor, index: torch.Tensor, domain: tuple[float, float],
                 what: str) -> None:
    """Refuse centres outside the domain box (exactly, in float64): their region ball ∩ domain
    does not contain them and may be empty, which no back end can answer meaningfully.
    `index` holds each row's index in the user's data."""
    low, high = domain
    xd = x.double().reshape(len(x), -1)
    outside = ((xd < low) | (xd > high)).any(-1)
    if not outside.any():
        return
    bad = outside.nonzero().flatten().tolist()
    first = bad[0]
    worst = int((torch.clamp(low - xd[first], min=0) + torch.clamp(xd[first] - high, min=0))
                .argmax())
    shown = ", ".join(str(int(index[i])) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
    raise CentreError(
        f"{what}: {len(bad)} of {len(x)} centres lie outside the domain box({low:.9g}, {high:.9g}): "
        f"centre{'s' if len(bad) > 1 else ''} {shown} (index in the data); e.g. centre "
        f"{int(index[first])} has x[{worst}] = {float(xd[first, worst]):.9g}. Their region "
        f"ball ∩ domain does not contain them (and may be empty): choose centres inside the "
        f"domain (`centres:` or --data) or widen `domain:` in the spec")


def select_centres(centres: ir.Centres, data: Dataset, model: nn.Module, points: int | None,
                   spec_dir: Path | None = None, domain: tuple[float, float] | None = None,
                   what: str = "centres", classes: int | None = None,
                   device: torch.device | str = "cpu"
                   ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The centres R of a declaration: its source, `where correct`, its point count (capped
    by `points`). With `domain` (see `domain_of`), centres that will be used but lie outside
    the domain box raise CentreError (with their indices in the data and the domain); `what`
    names the declaration in that message. With `classes` (the model's number of outputs),
    labels of the source that are no class of the model raise CentreError. The centres
    x (N, n) and labels y (N,) are on `device` (the model's). See `select_centres_indexed`
    for the centres' indices in the data."""
    x, y, _, info = select_centres_indexed(centres, data, model, points, spec_dir, domain,
                                           what, classes, device)
    return x, y, info


def select_centres_indexed(centres: ir.Centres, data: Dataset, model: nn.Module,
                           points: int | None, spec_dir: Path | None = None,
                           domain: tuple[float, float] | None = None, what: str = "centres",
                           classes: int | None = None, device: torch.device | str = "cpu"
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """`select_centres` and each centre's index in its source (the user's file for an .npz of
    x and y, read as given; the split otherwise), on the CPU."""
    from specrob.data import DataError, check_labels
    if centres.is_file:
        path = Path(centres.source)
        if not path.is_absolute() and spec_dir is not None:
            path = spec_dir / path
        other = load_data(str(path), split=False)  # x, y alone: the points as given
        x, y, labels = other.x_train, other.y_train, other.label_names[0]
    else:
        train = centres.source == "train"
        x, y = (data.x_train, data.y_train) if train else (data.x_test, data.y_test)
        labels = data.label_names[0 if train else 1]
    if classes is not None:
        try:
            check_labels(y, classes, labels)
        except DataError as error:
            raise CentreError(f"{what}: {error}") from None
    x, y = torch.tensor(x, device=device), torch.tensor(y, device=device)
    index = torch.arange(len(y), device="cpu")
    info = {"source": centres.source, "available": len(y)}
    if centres.correct_only:
        with torch.no_grad():
            keep = model(x).argmax(-1) == y
        x, y, index = x[keep], y[keep], index[keep.cpu()]
        info["correct"] = int(keep.sum())
    count = centres.count
    if points is not None:
        count = points if count is None else min(count, points)
    if count is not None:
        x, y, index = x[:count], y[:count], index[:count]
    if domain is not None:
        source = centres.source if centres.is_file else (
            f"--data {data.name} as given" if data.given else
            f"the {centres.source} split of {data.name}")
        check_inside(x, index, domain, f"{what} (centres: {source})")
    info["used"] = len(y)
    return x, y, index, info


class EvalError(SpecrobError):
    """An evaluation that cannot give meaningful numbers (e.g. an infinite radius grid)."""


def eps_grid(prop: ir.Property, input_dim: int, config: EvalConfig) -> list[float]:
    """The radii to evaluate: --eps, else six from 0 to the property's eps. Raises EvalError
    for a radius that is not a finite number >= 0."""
    if config.eps is not None:
        bad = [e for e in config.eps if not (math.isfinite(e) and e >= 0)]
        if bad:
            raise EvalError(f"--eps {bad[0]}: radii are finite numbers >= 0")
        return sorted(config.eps)
    eps = constant(prop.ball.radius, resolve_params(prop, input_dim))
    if not (math.isfinite(eps) and eps >= 0):
        raise EvalError(f"property {prop.name}: its radius is {eps:g}, so the default grid of "
                        f"radii from 0 to it is not finite; give the radii with --eps, e.g. "
                        f"--eps 0,0.05,0.1")
    return [round(eps * i / 5, 10) for i in range(6)]


class Evaluation:
    """Runs the estimators declaration by declaration, saving results as it goes."""

    def __init__(self, spec: ir.Spec, model: nn.Module, data: Dataset, config: EvalConfig,
                 out: Path | None = None, describe_model: str = "",
                 progress: Callable[[str], None] | None = None,
                 model_identity: list | None = None, fresh: bool = False,
                 classes: int | None = None):
        from specrob.devices import resolve_device
        # the device in the run's identity is the one used (auto -> cpu or cuda:N)
        config = dataclasses.replace(config, device="cpu" if config.cluster is not None
                                     else resolve_device(config.device))
        self.device = torch.device(config.device)
        model.to(self.device)
        self.spec, self.model, self.data, self.config = spec, model, data, config
        self.classes = classes  # the model's outputs: labels beyond them are refused
        self.show_bars = progress is not None
        self.out = out
        self.progress = progress or (lambda message: None)
        self.spec_dir = Path(spec.path).resolve().parent if Path(spec.path).exists() else None
        self.results = {"spec": spec.path, "model": describe_model, "data": data.name,
                        "config": config.result_options(), "key": config.key(),
                        "properties": {}, "scores": {}}
        self.model_identity = model_identity
        self.fresh = fresh
        self.client = None  # a Dask client while properties run on --cluster
        self.folder = None
        self.checked = False
        self.largest = 0  # the most centres of a property (known after check_centres)

    def identity(self) -> dict:
        """Everything that determines the results: the model's files, the data, the spec text
        after --set, the options and the seed."""
        from specrob.lang import printer
        from specrob.runfolder import array_identity
        return {"model": self.model_identity, "data": {
            "name": self.data.name, "sha256": array_identity(
                self.data.x_train, self.data.y_train, self.data.x_test, self.data.y_test)},
            "spec": printer.spec(self.spec), "config": self.config.result_options()}

    def __enter__(self) -> "Evaluation":
        """Open the run folder: bound to `identity()` and locked; finished declarations of the
        same run are kept. Raises RunFolderError on another run's folder (unless fresh)."""
        self.check_centres()  # before the run folder is touched (--fresh discards it)
        todo = [p for p in self.spec.properties if p.name not in self.results["properties"]]
        address = self.config.cluster
        if address is None and self.config.workers > 1 and self.config.shard is None \
                and self.device.type == "cpu" and self.largest > security.BLOCK:
            address = f"local:{self.config.workers}"  # --workers N: blocks on N processes
        if todo and address is not None:  # before the folder, as for verify
            from specrob.cluster import open_client
            self.client = open_client(address)
        if self.out is None:
            return self
        from specrob.runfolder import RunFolder, read_json
        self.folder = RunFolder(self.out, "eval", self.identity(),
                                files=("results.json", "*.png", "blocks"), fresh=self.fresh)
        self.folder.open()
        path = self.results_path
        assert path is not None  # self.out is set
        if self.folder.resumed and path.exists():
            old = read_json(path, "use --fresh to start over")
            self.results["properties"] = old.get("properties", {})
            self.results["scores"] = old.get("scores", {})
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            from specrob.cluster import close_client
            close_client(self.client)
            self.client = None
        if self.folder is not None:
            self.folder.close()

    @property
    def results_path(self) -> Path | None:
        return None if self.out is None else self.out / "results.json"

    def save(self) -> None:
        path = self.results_path
        if path is None:  # no out folder
            return
        from specrob.runfolder import json_default, write_json
        write_json(path, self.results, default=json_default)

    def centres(self, decl: ir.Property | ir.Score):
        """The declaration's centres (see `select_centres`), refused when outside its domain
        (unless a score weighs by G = 1: it draws its points from the domain, not the data)."""
        used = not isinstance(decl, ir.Score) or decl.G.density
        return select_centres(decl.centres, self.data, self.model, self.config.points,
                              self.spec_dir,
                              domain=domain_of(decl, self.data.input_dim) if used else None,
                              what=f"{type(decl).__name__.lower()} {decl.name}",
                              classes=self.classes, device=self.device)

    def check_centres(self) -> None:
        """Every declaration's centres, checked against its domain before any work (raises
        CentreError)."""
        if not self.checked:
            for decl in (*self.spec.properties, *self.spec.scores):
                count = len(self.centres(decl)[1])
                if isinstance(decl, ir.Property):
                    self.largest = max(self.largest, count)
            self.checked = True

    def run(self) -> dict:
        self.check_centres()
        for prop in self.spec.properties:
            if prop.name not in self.results["properties"]:
                self.progress(f"property {prop.name}")
                self.results["properties"][prop.name] = self.property(prop)
                self.save()
        shard = None if self.config.shard is None else shard_of(self.config.shard)
        for score in self.spec.scores if shard is None or shard[0] == 0 else ():
            if score.name not in self.results["scores"]:
                self.progress(f"score {score.name}")
                self.results["scores"][score.name] = self.score(score)
                self.save()
        if shard is not None:  # `specrob merge` takes finished shards only
            self.results["finished"] = True
            self.save()
        return self.results

    def property(self, prop: ir.Property) -> dict:
        cfg = self.config
        x0, y, info = self.centres(prop)
        eps_values = eps_grid(prop, x0.shape[-1], cfg)
        from specrob.search.attacks import attack_model
        search_model, note = attack_model(prop, self.model)
        if cfg.shard is not None:  # this shard's blocks, joined later by `specrob merge`
            part = self.property_shard(prop, x0, y, eps_values, search_model)
        else:
            part = {"points": [r.as_dict() for r in
                               self.curve(prop, x0, y, eps_values, search_model)]}
        entry = {"norm": norm_name(prop.ball.p), "centres": info, **part}
        if note:
            entry["note"] = note
        shape = lipschitz_shape(prop)
        first = cfg.shard is None or cfg.shard.startswith("0/")  # shard 0 does the rest
        if first and shape is not None and cfg.lipschitz and len(y) > 0:
            entry["alpha_lim"] = self.alpha_curve(prop, x0, shape)
            entry.update(self.lipschitz_context(prop, shape))
        return entry

    def curve(self, prop: ir.Property, x0: torch.Tensor, y: torch.Tensor,
              eps_values: list[float], search_model):
        """The property's security curve, here or on the Dask cluster of --cluster."""
        from tqdm.auto import tqdm

        from specrob.estimate.security import security_curve
        from specrob.search.attacks import default_attacks
        cfg = self.config
        with tqdm(total=len(eps_values), desc=prop.name, unit="eps", leave=False,
                  disable=not self.show_bars) as bar:
            attacks = default_attacks(cfg.steps, cfg.restarts)
            if self.client is not None:
                from specrob.estimate.distributed import security_curve_on_cluster
                return security_curve_on_cluster(
                    self.client, prop, self.model, x0, y, eps_values, attacks=attacks,
                    samples=cfg.samples, seed=cfg.seed, progress=bar.update,
                    search_model=search_model)
            return security_curve(prop, self.model, x0, y, eps_values, attacks=attacks,
                                  samples=cfg.samples, seed=cfg.seed, progress=bar.update,
                                  search_model=search_model)

    def property_shard(self, prop: ir.Property, x0: torch.Tensor, y: torch.Tensor,
                       eps_values: list[float], search_model) -> dict:
        """This shard's blocks of the property's security curve (`--shard i/N`: blocks k
        with k % N == i), each saved to <out>/blocks/<property>-<k>.pt for `specrob merge`."""
        from specrob.estimate.security import blocks, curve_block, save_block
        from specrob.search.attacks import block_seed, default_attacks
        cfg = self.config
        shard = shard_of(cfg.shard or "")
        assert shard is not None  # EvalConfig checked it
        i, n = shard
        parts = blocks(len(y))
        mine = [k for k in range(len(parts)) if k % n == i]
        for k in mine:
            path = None if self.out is None else self.out / "blocks" / f"{prop.name}-{k}.pt"
            if path is not None and path.exists():  # this run's (the folder is bound to it)
                continue
            curve = curve_block(prop, self.model, x0[parts[k]], y[parts[k]], eps_values,
                                attacks=default_attacks(cfg.steps, cfg.restarts),
                                samples=cfg.samples, seed=block_seed(cfg.seed, k),
                                search_model=search_model)
            if path is not None:
                save_block(path, curve)
        return {"shard": cfg.shard, "blocks": mine, "block_count": len(parts)}

    def lipschitz_context(self, prop: ir.Property, shape) -> dict:
        """Lassance et al.'s other two views of the same data: the dataset-incompatibility
        curve of the training set (Figs. 1/3) and the accuracy under Gaussian noise vs SNR
        (Fig. 4) on the test set."""
        from specrob.estimate import lipschitz
        params = resolve_params(prop, self.data.input_dim)
        alpha = params.get(shape[0], 1.0)
        x, y = (torch.tensor(self.data.x_train[:1000], device=self.device),
                torch.tensor(self.data.y_train[:1000], device=self.device))
        top = params["diameter"] / 2
        distances = [top * k / 20 for k in range(21)]
        incompatible = lipschitz.incompatibility_curve(x, y, distances, alpha=[alpha],
                                                       p=shape[1])
        xt, yt = torch.tensor(self.data.x_test, device=self.device), torch.tensor(self.data.y_test, device=self.device)
        if self.config.points is not None:
            xt, yt = xt[:self.config.points], yt[:self.config.points]
        noise = lipschitz.noise_accuracy(self.model, xt, yt, [-10, -5, 0, 5, 10, 15, 20, 30],
                                         generator=generator(self.config.seed, self.device))
        return {"incompatibility": incompatible.as_dict(), "noise_accuracy": noise.as_dict()}

    def alpha_curve(self, prop: ir.Property, x0: torch.Tensor, shape) -> dict:
        from specrob.estimate import lipschitz
        params = resolve_params(prop, x0.shape[-1])
        r = constant(prop.ball.radius, params)
        radii = [r * k / 4 for k in range(1, 9)]  # up to twice the property's radius
        uses_softmax = mentions(prop.body, lambda n: isinstance(n, ir.Softmax))
        return lipschitz.alpha_curve_summary(self.model, x0, radii, p=shape[1],
                                             softmax=uses_softmax, seed=self.config.seed,
                                             alpha=params.get(shape[0]))

    def score(self, score: ir.Score) -> dict:
        from specrob.estimate.scores import estimate_score
        cfg = self.config
        x0, y, info = self.centres(score)
        if cfg.margins and _is_margin_score(score):
            from specrob.estimate import margins
            return {"centres": info, **margins.margin_score_summary(
                score, self.model, x0, y, grid=max(cfg.grid, 200), seed=cfg.seed)}
        result = estimate_score(score, self.model, x0, y, samples=cfg.samples, grid=cfg.grid,
                                attack_steps=cfg.steps, seed=cfg.seed, spec_dir=self.spec_dir)
        entry = {"centres": info, **result.as_dict()}
        if score.H == "id" and score.G == ir.Weight(True) and any(
                p.name == "eps_label" for p in score.params):
            entry["accuracy_bound"] = self.proposition_6(score, x0, y, result.value)
        return entry

    def proposition_6(self, score: ir.Score, x0, y, rho) -> dict:
        """Tibo et al. Proposition 6, where the score declares `eps_label` (the kernel's
        label noise): accuracy on Q∘P >= accuracy - eps_label - (1 - R_{Q,id,p})."""
        from specrob.estimate.margins import accuracy_lower_bound
        from specrob.stats import Estimate, bool_proportion
        with torch.no_grad():
            accuracy = bool_proportion(self.model(x0).argmax(-1) == y)
        delta = Estimate(1 - rho.value, 1 - rho.high, 1 - rho.low, rho.count)
        # an Estimate, since accuracy is one; eps_label is a number (the checker's type)
        bound = cast(Estimate, accuracy_lower_bound(
            accuracy, delta=delta, eps_label=float(cast(float, score.value("eps_label")))))
        return {"accuracy": accuracy.as_dict(), "bound": bound.as_dict(),
                "note": "interval combines the inputs' intervals (union bound, ~85-90%)"}


def _is_margin_score(score: ir.Score) -> bool:
    """Q uniform on a ball whose radius is the family variable, H = indicator: the score is
    the area under a margin curve (Tibo et al., Examples 2-3)."""
    k = score.kernel
    return (isinstance(k, ir.UniformBall) and score.H == "indicator" and not score.label_conditioned
            and isinstance(k.ball.radius, ir.Param)
            and any(f.var == k.ball.radius.name for f in score.families)
            and score.G.divide_by is None)


__all__ = ["EvalConfig", "Evaluation", "select_centres", "select_centres_indexed", "domain_of",
           "CentreError", "eps_grid", "subset"]
