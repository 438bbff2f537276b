"""A property compiled against a network: its search objective, its loss in a logic, and
crisp satisfaction — all batched, with one network call per network application."""
from __future__ import annotations

from specrob.errors import SpecrobError

import math
from typing import Callable

import torch
from torch import nn

from specrob.lang import ir
from specrob.lang.walk import mentions
from specrob.lang.params import constant, resolve_params
from specrob.lang.walk import negate
from specrob.logic.formulas import FormulaCompiler
from specrob.logic.finite import nonfinite_error
from specrob.logic.logics import Boolean, Logic, SearchDL2, make_logic
from specrob.logic.terms import Points
from specrob.search.region import Region
from specrob.search.searches import Search, make_search


def _is_margin_body(body: ir.Formula) -> bool:
    """Is the body exactly `forall j != y: f(x)[y] > f(x)[j]` (what `argmax(f(x)) == y`
    becomes)?"""
    if not (isinstance(body, ir.IndexQuant) and body.kind == "forall"
            and body.exclude == ir.Label() and isinstance(body.body, ir.Compare)):
        return False
    atom = body.body
    return (atom.op == ">" and atom.left == ir.Index(ir.Net(False), ir.Label())
            and atom.right == ir.Index(ir.Net(False), ir.IndexVar(body.var)))


class CompiledProperty:
    """`forall x in ball(x0, eps, p) ∩ box: body` for inputs of dimension n."""

    def __init__(self, prop: ir.Property, input_dim: int, logic: Logic | str = "dl2",
                 xi: float = 0.1):
        self.prop = prop
        self.params = resolve_params(prop, input_dim)
        self.region = Region(constant(prop.ball.radius, self.params), prop.ball.p,
                             constant(prop.domain.low, self.params),
                             constant(prop.domain.high, self.params))
        self.logic = make_logic(logic, xi=xi) if isinstance(logic, str) else logic
        self.needs_centre_output = mentions(prop.body, lambda n: n == ir.Net(True))
        # compiled once: the body and its negation in DL2 (the search objective, sharing
        # every term), the body in the training logic, and crisp satisfaction
        self._search = FormulaCompiler()
        # The search needs the direction towards a violation and its sign: DL2 with `or` as a
        # minimum, and without the tie term (no gradient; a tie has measure zero).
        dl2 = SearchDL2(xi=0.0)
        # the body `forall j != y: f(x)[y] > f(x)[j]` has a direct objective (its operations)
        self.margin_body = _is_margin_body(prop.body)
        self._search_fns = [self._search.compile(prop.body, dl2),
                            self._search.compile(negate(prop.body), dl2)]
        self._loss = FormulaCompiler()
        self._loss_fn = self._loss.compile(prop.body, self.logic)
        self._holds = FormulaCompiler()
        self._holds_fn = self._holds.compile(prop.body, Boolean())

    def centre_output(self, model: nn.Module, x0: torch.Tensor) -> torch.Tensor | None:
        """f(x0), computed once per batch (None when the body does not mention it)."""
        return model(x0) if self.needs_centre_output else None

    def points(self, x, fx, x0, fx0, y) -> Points:
        fx0 = fx0 if fx0 is not None else fx  # unused by the body: any tensor of the shape
        return Points(x, fx, x0, fx0, y, self.params)

    def _repeat(self, rows: int, *tensors):
        """Centre data repeated to match `rows` stacked restarts."""
        times = rows // tensors[0].shape[0]
        if times == 1:
            return list(tensors)
        return [None if t is None else t.repeat((times,) + (1,) * (t.dim() - 1))
                for t in tensors]

    def objective(self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor,
                  fx0: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
        """J(x) = L(body) - L(not body) in DL2 (`or` as a minimum): positive exactly where the
        body is violated (but at ties), growing with the violation, and with a gradient
        towards the violation where the body still holds (DL2's counterexample search
        minimises L(not body))."""
        fx0 = None if fx0 is None else fx0.detach()
        repeated: dict[int, list] = {}  # rows -> the centre data repeated once, not per step
        if self.margin_body:
            return self._margin_objective(model, y)

        def J(x: torch.Tensor) -> torch.Tensor:
            rows = x.shape[0]
            if rows not in repeated:
                repeated[rows] = self._repeat(rows, x0, fx0, y)
            c0, cf0, cy = repeated[rows]
            body, negated = self._search.run(self._search_fns,
                                             self.points(x, model(x), c0, cf0, cy))
            return body - negated

        return J

    def _margin_objective(self, model: nn.Module, y: torch.Tensor
                          ) -> Callable[[torch.Tensor], torch.Tensor]:
        """The search objective of `forall j != y: f(x)[y] > f(x)[j]` (CR, argmax(f(x)) == y)
        computed directly with the operations the formula engine runs for it (gather, relu,
        masked_fill, sum / amin), without its per-call bookkeeping: the same values and
        gradients (tests/logic/test_compiled.py), a quarter less time per PGD step on small
        networks."""
        labels: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def J(x: torch.Tensor) -> torch.Tensor:
            logits = model(x)
            rows = x.shape[0]
            if rows not in labels:
                cy = y.repeat(rows // y.shape[0]).reshape(-1, 1).to(logits.device)
                classes = torch.arange(logits.shape[-1], device=logits.device)
                labels[rows] = (cy, classes == cy)
            cy, excluded = labels[rows]
            fy = logits.gather(1, cy)
            body = torch.relu(logits - fy).masked_fill(excluded, 0.0).sum(1)
            negated = torch.relu(fy - logits).masked_fill(excluded, math.inf).amin(1)
            return body - negated

        return J

    def worst_point(self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor,
                    search: Search | str = "pgd", generator: torch.Generator | None = None,
                    fx0: torch.Tensor | None = None, **options) -> torch.Tensor:
        """x* maximising the violation in ball ∩ box (the network in eval mode meanwhile)."""
        search = make_search(search, **options) if isinstance(search, str) else search
        was_training = model.training
        model.eval()
        try:
            if fx0 is None:
                with torch.no_grad():
                    fx0 = self.centre_output(model, x0)
            x_star, _ = search.maximise(self.objective(model, x0, y, fx0), x0, self.region,
                                        generator)
        finally:
            model.train(was_training)
        return x_star.detach()

    def loss(self, model: nn.Module, x: torch.Tensor, x0: torch.Tensor, y: torch.Tensor,
             fx0: torch.Tensor | None = None) -> torch.Tensor:
        """The logic's loss of the body at x, per sample (differentiable in the weights)."""
        if fx0 is None:
            fx0 = self.centre_output(model, x0)
        (value,) = self._loss.run([self._loss_fn], self.points(x, model(x), x0, fx0, y))
        loss = self.logic.loss(value)
        if not torch.isfinite(loss).all():
            raise nonfinite_error(self.prop, self._loss.terms, self._loss.last_memo,
                                  x.shape[0], "the constraint loss")
        return loss

    def _check_crisp(self, value: torch.Tensor, batch: int) -> torch.Tensor:
        """A NaN term makes its comparison silently false: refuse it (inf compares fine)."""
        memo = self._holds.last_memo
        if any(torch.is_tensor(v) and v.is_floating_point() and torch.isnan(v).any()
               for v in memo.values()):
            raise nonfinite_error(self.prop, self._holds.terms, memo, batch,
                                  "the satisfaction check", nan_only=True)
        return value

    def holds_at(self, x: torch.Tensor, fx: torch.Tensor, x0: torch.Tensor,
                 fx0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Crisp satisfaction given the network's outputs (e.g. computed by onnxruntime)."""
        (value,) = self._holds.run([self._holds_fn], self.points(x, fx, x0, fx0, y))
        return self._check_crisp(value, x.shape[0])

    def holds(self, model: nn.Module, x: torch.Tensor, x0: torch.Tensor, y: torch.Tensor,
              fx0: torch.Tensor | None = None) -> torch.Tensor:
        """Crisp satisfaction of the body at x, per sample."""
        with torch.no_grad():
            if fx0 is None:
                fx0 = self.centre_output(model, x0)
            fx = model(x)
            if self.margin_body and not bool(torch.isnan(fx).any()):
                # f(x)[y] > f(x)[j] for every j != y, as the engine's Boolean logic computes it
                # (a NaN output takes the engine's path, which names the term and refuses it)
                cy = y.reshape(-1, 1).to(fx.device)
                excluded = torch.arange(fx.shape[-1], device=fx.device) == cy
                return (fx.gather(1, cy) > fx).masked_fill(excluded, True).all(1)
            (value,) = self._holds.run([self._holds_fn], self.points(x, fx, x0, fx0, y))
            return self._check_crisp(value, x.shape[0])


class ModelInputError(SpecrobError, RuntimeError):
    """The user's model failed on the inputs `spec.loss(model)` was called with (e.g. images
    given to a model that takes flat rows); the message has the shape and the model's error."""


class ConstraintLoss:
    """`spec.loss(model)`: a callable (x, y) -> mean constraint loss at the worst point of
    each ball, ready to add to a training loss: `ce + 0.2 * constraint(x, y)`."""

    def __init__(self, prop: ir.Property, model: nn.Module, logic: str = "dl2",
                 search: str = "pgd", xi: float = 0.1, reduction: str = "mean",
                 strict: bool = False, **search_options):
        from specrob.logic.logics import make_logic
        from specrob.search.searches import search_options as accepted
        self.prop, self.model = prop, model
        self.logic_name, self.xi = logic, xi
        make_logic(logic)  # an unknown logic fails here, not at the first batch
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction={reduction!r}: choose 'mean', 'sum' or 'none'")
        self.reduction = reduction
        if strict:
            allowed = accepted(search)
            for key in search_options:
                if key not in allowed:
                    from specrob.lang.errors import did_you_mean
                    guess = did_you_mean(key, [*allowed, "reduction", "xi", "logic",
                                               "search", "property"])
                    raise TypeError(f"constraint_loss() got an unknown option '{key}'"
                                    + (f"; did you mean '{guess}'?" if guess else "")
                                    + f" (search '{search}' takes: {', '.join(sorted(allowed))})")
        self.search = make_search(search, **search_options)
        self._compiled: dict[int, CompiledProperty] = {}

    def compiled(self, input_dim: int) -> CompiledProperty:
        if input_dim not in self._compiled:
            self._compiled[input_dim] = CompiledProperty(self.prop, input_dim, self.logic_name,
                                                         self.xi)
        return self._compiled[input_dim]

    def per_sample(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss per sample, shape (B,): x is (B, n) or (B, *shape) (e.g. images)."""
        model, shape = self.model, x.shape
        if x.dim() > 2:  # the property works on flat points; the model sees its own shape
            model = _Reshaped(self.model, tuple(x.shape[1:]))
            x = x.reshape(x.shape[0], -1)
        c = self.compiled(x.shape[-1])
        try:
            x_star = c.worst_point(model, x, y, self.search)
        except RuntimeError as exc:  # the model's own forward fails on these inputs
            if isinstance(exc, SpecrobError):  # specrob's own report (a non-finite loss)
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ModelInputError(
                f"the model failed on x of shape {tuple(shape)}: {type(exc).__name__}: "
                f"{first} (spec.loss gives the model x in the shape it is called with: pass "
                f"(B, n) rows to a model that takes rows, (B, C, H, W) images to one that "
                f"takes images)") from exc
        return c.loss(model, x_star, x, y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = self.per_sample(x, y)
        return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[self.reduction]()


class _Reshaped(nn.Module):
    """A model that takes (B, *shape) inputs, called with flat (B, n) points."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.model, self.shape = model, shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], *self.shape))
