"""The package's layers hold: every `import specrob.X` in specrob's source (at module level or
inside a function; not under `if TYPE_CHECKING:`) goes from a package to one it may use.

    errors, numerics, resources, options the base: no other specrob module (devices: --device)
    lang                                 the language: text -> checked IR, torch-free
    network, data, corruptions, stats    networks (ONNX, model files), datasets and their
                                         corrupted copies, estimates
    bounds                               bound propagation (IBP, CROWN) on the network IR:
                                         verification proves with it, training trains with it
    runfolder, models                    run identity and resume; loading a model
    search                               regions, samplers and attacks on a property
    logic                                the property in torch (crisp and differentiable)
    training, estimate, verification     the back ends: never one another
    api                                  the public functions over the back ends
    reproduce, report, cli               pages, plots and the command line

A new edge against these layers fails here with the file and line, before it spreads."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

BASE = {"errors", "numerics", "resources", "options", "devices"}
ALLOWED: dict[str, set[str]] = {
    "devices": {"errors", "options"},  # resolving --device (cpu, cuda:N, auto)
    "process": set(),  # process-wide settings of the command line (malloc)
    "cluster": {"errors"},  # Dask clients for --cluster
    "errors": set(),
    "numerics": set(),
    "resources": set(),
    "options": {"errors"},
    "lang": BASE,
    "network": BASE,
    "data": BASE,
    "corruptions": BASE,
    "stats": BASE,
    "runfolder": BASE | {"network", "__version__"},
    "models": BASE | {"network", "runfolder"},
    "search": BASE | {"lang", "network", "stats"},
    "logic": BASE | {"lang", "search"},
    "bounds": BASE | {"network"},
}
LOWER = set(ALLOWED) | {"__version__"}
ALLOWED |= {
    "training": LOWER,
    "estimate": LOWER,
    "verification": LOWER,
    "report": LOWER,
    "api": LOWER | {"training", "estimate", "verification", "report", "reproduce"},
    "reproduce": LOWER | {"api", "training", "estimate", "verification", "report"},
    # the command line parses and prints: the API, the errors it reports, the spec summary
    # of `check`, the option dataclasses whose fields are its defaults, and the printers
    "cli": BASE | {"api", "lang", "report", "training", "estimate", "verification",
                   "process", "__version__"},
    "__init__": BASE | {"api", "lang", "training", "estimate", "verification"},
    "__main__": {"cli"},
}
BACK_ENDS = {"training", "estimate", "verification"}


def _imports(tree: ast.AST):
    """(module, line) of every absolute import, skipping `if TYPE_CHECKING:` blocks."""
    found = []

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node):
            test = node.test
            if getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING":
                for item in node.orelse:
                    self.visit(item)
                return
            self.generic_visit(node)

        def visit_Import(self, node):
            found.extend((alias.name, node.lineno) for alias in node.names)

        def visit_ImportFrom(self, node):
            if node.module and not node.level:
                found.append((node.module, node.lineno))
                if node.module == "specrob":  # from specrob import api, stats
                    found.extend((f"specrob.{a.name}", node.lineno) for a in node.names)

    Visitor().visit(tree)
    return found


def _edges():
    for path in sorted((REPO / "specrob").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        source = parts[1]
        for module, line in _imports(ast.parse(path.read_text())):
            names = module.split(".")
            if names[0] == "specrob" and len(names) > 1 and names[1] != source:
                yield source, names[1], f"{path.relative_to(REPO)}:{line}"


def test_every_package_is_placed_in_a_layer():
    packages = {p.name if p.is_dir() else p.stem for p in (REPO / "specrob").iterdir()
                if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert packages - set(ALLOWED) == set()


def test_no_import_goes_against_the_layers():
    bad = [f"{where}: {source} imports {target}" for source, target, where in _edges()
           if target not in ALLOWED.get(source, set())]
    assert bad == []


def test_the_back_ends_do_not_import_one_another():
    bad = [f"{where}: {source} imports {target}" for source, target, where in _edges()
           if source in BACK_ENDS and target in BACK_ENDS]
    assert bad == []


def test_the_language_runs_without_torch():
    """`lang` imports no third-party numeric back end: the checker runs where torch is not
    installed (numpy and sympy are the language's own)."""
    bad = []
    for path in sorted((REPO / "specrob" / "lang").rglob("*.py")):
        for module, line in _imports(ast.parse(path.read_text())):
            if module.split(".")[0] in ("torch", "onnx", "onnxruntime", "maraboupy"):
                bad.append(f"{path.relative_to(REPO)}:{line}: {module}")
    assert bad == []


def test_the_checker_catches_a_forbidden_edge(tmp_path: Path):
    """The walk itself finds imports inside functions (the oracle of the tests above)."""
    tree = ast.parse("def f():\n    from specrob.verification import bab\n"
                     "if TYPE_CHECKING:\n    import specrob.training\n")
    assert _imports(tree) == [("specrob.verification", 2)]
