"""The training loop: epochs of a regime, metrics per epoch, checkpoints, resume, export.

Every epoch's randomness (data order, random starts) is seeded from (seed, epoch), so a run
resumed from its last checkpoint gives exactly the result of an uninterrupted one.
"""
from __future__ import annotations

from specrob.errors import SpecrobError

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from specrob.data import Dataset
from specrob.lang import ir
from specrob.logic.compiled import CompiledProperty
from specrob.search.searches import PGD
from specrob.training.config import TrainConfig
from specrob.training.distributed import Group, average_gradients, from_leader, share, total
from specrob.training.regimes import REGIMES, Context


class TrainError(SpecrobError):
    """A training run that cannot start or go on; the message says why and what to do."""


def _to_cpu(value):
    """A (nested) state dict with its tensors on the CPU, to send between processes."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of `config` over the model's parameters. torch.optim.SGD's momentum /
    dampening / weight_decay are Torch7 optim.sgd's (weight decay added to the gradient before
    the momentum; the first step's buffer is the gradient itself). The rate of each step is
    set by `learning_rate`."""
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               dampening=config.dampening, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def learning_rate(config: TrainConfig, epoch: int, step: int) -> float:
    """The rate of optimiser step `step` (0-based, counted over the whole run) in `epoch`
    (0-based): lr · lr_gamma^(number of lr_steps <= epoch) / (1 + step · lr_decay). lr_steps
    is the usual step schedule (torch's MultiStepLR: Tibo et al. drop 1e-3 to 1e-4 from their
    6th epoch, lr_steps = (5,)); lr_decay is Torch7's learningRateDecay (Shaham et al.'s
    released scripts: 5e-6)."""
    drops = sum(epoch >= m for m in config.lr_steps)
    return config.lr * config.lr_gamma ** drops / (1.0 + step * config.lr_decay)


@dataclass
class Trainer:
    model: nn.Module
    prop: ir.Property
    data: Dataset
    config: TrainConfig
    out: Path | None = None
    model_file: str | None = None
    progress: bool = True
    # data-parallel under torchrun (`training/distributed.py`); None: one process. Only rank
    # 0 is given `out`.
    group: Group | None = None

    def __post_init__(self):
        if self.config.regime not in REGIMES:
            raise TrainError(f"unknown regime '{self.config.regime}': choose one of "
                             f"{', '.join(REGIMES)}")
        if self.group is not None and self.config.regime in ("cotrain", "adapt"):
            raise TrainError(f"--regime {self.config.regime} under torchrun: its "
                             f"{'generator' if self.config.regime == 'cotrain' else 'autoencoder pair'}"
                             f" has its own optimiser, which is not averaged across processes; "
                             f"run it in one process")
        if self.config.shifted is not None and not Path(self.config.shifted).is_file():
            raise TrainError(f"--shifted {self.config.shifted}: no such file")
        from specrob.devices import resolve_device
        resolved = resolve_device(self.config.device)  # DeviceError: unknown, or no CUDA
        if self.config.augment == "static-fgsm" and self.config.regime == "augmentation":
            reference = self.config.reference
            if reference is None or not Path(reference).is_file():
                raise TrainError(
                    "--augment static-fgsm computes its points once against a trained network: "
                    + ("give it with --reference MODEL.onnx (e.g. a baseline's)"
                       if reference is None else f"--reference {reference}: no such file"))
        if not any(p.requires_grad for p in self.model.parameters()):
            raise TrainError("the model has no trainable parameters (its build() returns a "
                             "module without nn.Linear / nn.Conv2d / ... layers)")
        self.device = torch.device(resolved if self.group is None else self.group.device)
        self.model.to(self.device)
        n = self.data.input_dim
        try:
            self.compiled = CompiledProperty(self.prop, n, self.config.logic, self.config.xi)
        except ValueError as exc:
            raise TrainError(str(exc)) from None
        self.ctx = Context(self.compiled, self.config)
        torch.manual_seed(self.config.seed)
        self.regime = REGIMES[self.config.regime]()
        try:
            self.regime.setup(self.model, self.ctx, n, self.model_file)
        except ValueError as exc:  # an unknown search, a bad option of the regime
            raise TrainError(str(exc)) from None
        self.optimizer = make_optimizer(self.model, self.config)
        self.steps = 0  # optimiser steps taken (the rate schedule's clock)
        self.metrics: list[dict] = []
        self.epoch = 0
        self.static_added, self.static_count = False, 0  # static augmentation (fit)
        tensors = lambda a: torch.tensor(a, device=self.device)  # noqa: E731 - copies: data is read-only
        self.x_train, self.y_train = tensors(self.data.x_train), tensors(self.data.y_train)
        self.x_test, self.y_test = tensors(self.data.x_test), tensors(self.data.y_test)

    # --- checkpoints ------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """<out>/checkpoint.pt, or None for a run without a folder."""
        return None if self.out is None else self._checkpoint()

    def _checkpoint(self) -> Path:
        assert self.out is not None, "a run without a folder has no checkpoint"
        return self.out / "checkpoint.pt"

    def identity(self) -> dict:
        """What must match for a checkpoint to be resumed: the options (not the epoch count:
        a rerun with more epochs continues), the property after --set, the data, the model
        file."""
        from specrob.lang import printer
        from specrob.runfolder import array_identity, file_identity
        opts = self.config.options()
        opts.pop("epochs")
        if self.config.reference is not None:  # static-fgsm's points depend on its weights
            opts["reference_sha256"] = file_identity(Path(self.config.reference))["sha256"]
        if self.config.shifted is not None:  # adapt: the pair learns from these inputs
            opts["shifted_sha256"] = file_identity(Path(self.config.shifted))["sha256"]
        opts.update(self.regime.identity())  # e.g. a generator's code and weights
        return {"config": opts, "property": self.prop.name, "data": self.data.name,
                "params": {p.name: str(p.value) for p in self.prop.params},
                "property_text": printer.declaration(self.prop),
                "data_sha256": array_identity(self.data.x_train, self.data.y_train,
                                              self.data.x_test, self.data.y_test),
                "model_file": None if self.model_file is None else
                file_identity(self.model_file)}

    def save(self) -> None:
        if self.out is None:
            return
        from specrob.runfolder import write_json
        self.open_folder()
        state = {"identity": self.identity(), "epoch": self.epoch, "metrics": self.metrics,
                 # what build() was called with, so the weights load without the data
                 "build": {"input_dim": self.data.input_dim, "classes": self.data.classes},
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "steps": self.steps,
                 "regime": self.regime.state_dict()}
        path = self._checkpoint()
        tmp = path.with_suffix(".tmp")
        try:
            torch.save(state, tmp)
            os.replace(tmp, path)  # atomic: an interrupt never leaves half a file
        except (OSError, RuntimeError) as exc:  # torch reports a full disk as RuntimeError
            tmp.unlink(missing_ok=True)
            why = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
            raise TrainError(f"{path}: cannot write ({why}); earlier epochs "
                             f"are kept, free space and run again to resume") from None
        write_json(self.out / "metrics.json", self.metrics)

    def resume(self, fresh: bool = False) -> bool:
        """Open the run folder `out` (bound to `identity()`, locked against a second writer)
        and continue from its checkpoint when it holds this same run. Returns whether it
        resumed. Raises RunFolderError for another run's folder (unless `fresh`, which
        discards it), TrainError for an unreadable checkpoint. Under torchrun, rank 0 reads
        the folder and every process continues from its state (or from rank 0's weights)."""
        state, error = None, None
        if self.out is not None:
            try:
                state = self._read_checkpoint(fresh)
            except SpecrobError as exc:
                if self.group is None:
                    raise
                error = exc
        if self.group is not None:
            # every process learns rank 0's outcome: no process waits for one that failed
            shared = from_leader((None if state is None else _to_cpu(state),
                                  None if error is None else str(error),
                                  None if state is not None else _to_cpu(self.model.state_dict())),
                                 self.group)
            state, message, weights = shared
            if error is not None:
                raise error
            if message is not None:
                raise TrainError(f"rank 0: {message}")
            if weights is not None:  # a fresh run: every process starts from rank 0's weights
                self.model.load_state_dict(weights)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = state.get("steps", 0)  # (absent before schedules: a constant rate)
        self.regime.load_state_dict(state["regime"])
        self.epoch, self.metrics = state["epoch"], state["metrics"]
        return True

    def _read_checkpoint(self, fresh: bool) -> dict | None:
        """Open the run folder; its checkpoint when it holds this same run, else None."""
        self.open_folder(fresh)
        path = self._checkpoint()
        if not self.folder.resumed or not path.exists():
            return None
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:
            raise TrainError(f"{path}: unreadable checkpoint ({exc}); use --fresh to start "
                             f"over") from None
        if state.get("identity") != self.identity():
            raise TrainError(f"{path} belongs to a run with other settings; use another --out "
                             f"or --fresh to start over")
        return state

    def open_folder(self, fresh: bool = False) -> None:
        """Bind `out` to this run and lock it (see `specrob.runfolder.RunFolder`)."""
        from specrob.runfolder import RunFolder
        if getattr(self, "folder", None) is not None:
            return
        assert self.out is not None, "a run without a folder has nothing to open"
        self.folder = RunFolder(self.out, "train", self.identity(),
                                files=("checkpoint.pt", "checkpoint.tmp", "metrics.json",
                                       "model.onnx", "model.onnx.data", "*.png",
                                       "augmented.pt", "adapted.onnx", "adapted.onnx.data"),
                                fresh=fresh)
        self.folder.open()

    def close(self) -> None:
        """Release the run folder (its lock)."""
        if getattr(self, "folder", None) is not None:
            self.folder.close()

    # --- the loop ---------------------------------------------------------------------
    def fit(self) -> list[dict]:
        from tqdm.auto import tqdm
        cfg = self.config
        if self.epoch < cfg.epochs:
            self.add_static_points()
        epochs = tqdm(range(self.epoch, cfg.epochs), initial=self.epoch, total=cfg.epochs,
                      desc="epochs", disable=not self.progress, unit="epoch")
        for epoch in epochs:
            start = time.perf_counter()
            try:
                self.run_epoch(epoch, tqdm)
                evaluated = self.evaluate()
            except SpecrobError:
                raise
            except (RuntimeError, ValueError, TypeError, IndexError, ArithmeticError) as exc:
                # the user's model (its forward, its shapes) fails mid-training: say where
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise TrainError(f"training failed in epoch {epoch + 1}: {type(exc).__name__}: "
                                 f"{first} (raised while running the model; finished epochs "
                                 f"are kept in --out)") from None
            self.epoch = epoch + 1
            row = {"epoch": self.epoch, **self.last_train, **evaluated,
                   "seconds": round(time.perf_counter() - start, 3)}
            self.metrics.append(row)
            self.save()
            epochs.set_postfix(ce=f"{row['ce']:.3f}", acc=f"{row['test_accuracy']:.3f}",
                               sat=f"{row['test_satisfied']:.3f}")
        if self.out is not None:  # also after a resume with nothing left to train: a cut
            from specrob.runfolder import write_json  # metrics.json is made whole again
            self.open_folder()
            write_json(self.out / "metrics.json", self.metrics)
        return self.metrics

    def add_static_points(self) -> None:
        """--augment static-fgsm | random-walk: append the static points to the training set,
        made once and kept in <out>/augmented.pt (a resumed run trains on the same points)."""
        from specrob.training.static_augment import STATIC, load_reference, static_points
        cfg = self.config
        if cfg.regime != "augmentation" or cfg.augment not in STATIC or self.static_added:
            return
        path = None if self.out is None else self.out / "augmented.pt"
        if path is not None and path.exists():
            saved = torch.load(path, map_location=self.device, weights_only=True)
            x, y = saved["x"], saved["y"]
        else:
            region = self.compiled.region
            eps = float(region.radius(self.x_train[:1]).reshape(-1)[0])
            reference = None
            if cfg.reference is not None:
                reference = load_reference(cfg.reference, self.device)
            try:
                x, y = static_points(cfg.augment, self.x_train, self.y_train, eps=eps,
                                     low=region.low, high=region.high, seed=cfg.seed,
                                     reference=reference)
            except ValueError as exc:
                raise TrainError(str(exc)) from None
            if path is not None:
                self.open_folder()
                tmp = path.with_suffix(".tmp")
                torch.save({"x": x.cpu(), "y": y.cpu()}, tmp)
                os.replace(tmp, path)
        self.static_count = len(y)
        self.x_train = torch.cat([self.x_train, x.to(self.device)])
        self.y_train = torch.cat([self.y_train, y.to(self.device)])
        self.static_added = True

    def run_epoch(self, epoch: int, tqdm) -> None:
        cfg = self.config
        torch.manual_seed(_seed(cfg.seed, epoch))
        # the data order is drawn on the CPU: the same batches on every device
        gen = torch.Generator().manual_seed(_seed(cfg.seed, epoch))
        order = torch.randperm(len(self.y_train), generator=gen, device="cpu").to(self.device)
        other = torch.randperm(len(self.y_train), generator=gen, device="cpu").to(self.device)
        batches = range(0, len(order), cfg.batch_size)
        sums: dict[str, float] = {}
        self.model.train()
        for start in tqdm(batches, desc=f"epoch {epoch + 1}", leave=False,
                          disable=not self.progress, unit="batch"):
            batch = order[start:start + cfg.batch_size]
            idx = share(batch, self.group)
            x, y = self.x_train[idx], self.y_train[idx]
            self.optimizer.zero_grad(set_to_none=True)
            if len(idx) == 0:  # a torchrun process with no rows of a short last batch
                average_gradients(self.model, self.group, 0, len(batch))
                self.step(epoch)
                continue
            self.ctx.progress = epoch + (start // cfg.batch_size) / len(batches)
            loss, logs = self.regime.loss(self.model, x, y, self.ctx)
            if not torch.isfinite(loss):
                shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items())
                raise TrainError(f"the training loss is not finite in epoch {epoch + 1}, batch "
                                 f"{start // cfg.batch_size + 1} ({shown}); lower --lr, or "
                                 f"check the network and the property")
            loss.backward()
            average_gradients(self.model, self.group, len(idx), len(batch))
            self.step(epoch)
            self.regime.after_step(self.model, x, y, self.ctx,
                                   self.x_train[other[start:start + cfg.batch_size]])
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
        self.last_train = {k: v / len(order) for k, v in total(sums, self.group).items()}

    def step(self, epoch: int) -> None:
        """One optimiser step at the schedule's rate (`learning_rate`)."""
        rate = learning_rate(self.config, epoch, self.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.optimizer.step()
        self.steps += 1

    def evaluate(self) -> dict[str, float]:
        """Clean accuracy, constraint loss at the PGD point and the fraction of points whose
        PGD point satisfies the property, on the first `eval_points` train and test points."""
        cfg = self.config
        self.model.eval()
        torch.manual_seed(_seed(cfg.seed, 10_000 + self.epoch))
        search = PGD(steps=cfg.eval_steps, restarts=1)
        out: dict[str, float] = {}
        for split, xs, ys in (("train", self.x_train, self.y_train),
                              ("test", self.x_test, self.y_test)):
            x, y = xs[:cfg.eval_points], ys[:cfg.eval_points]
            with torch.no_grad():
                logits = self.model(x)
            out[f"{split}_accuracy"] = (logits.argmax(-1) == y).float().mean().item()
            x_star = self.compiled.worst_point(self.model, x, y, search)
            with torch.no_grad():
                out[f"{split}_satisfied"] = self.compiled.holds(self.model, x_star, x, y
                                                                ).float().mean().item()
                lc = self.compiled.loss(self.model, x_star, x, y).mean().item()
            if split == "train":
                out["constraint_loss"] = lc
            else:
                out["test_constraint_loss"] = lc
                out["test_ce"] = F.cross_entropy(logits, y).item()
        self.model.train()
        return out
