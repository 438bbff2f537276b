"""Spec files -> checked `ir.Spec`: reading, imports, templates (named notions), overrides.

Named notions (SR, LR, CR, SCR, LocalLipschitz, the scores) are the declarations of the
standard library in `specs/`: every spec may instantiate them, e.g.
`property small = CR(eps = 0.05)`, without importing anything. A file's own declarations and
its imports shadow them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from specrob.lang import ast, ir
from specrob.lang.checker import check_params, check_property, check_score
from specrob.lang.errors import Source, SpecError, did_you_mean
from specrob.lang.params import Override, override_from_api, parse_override
from specrob.lang.parser import parse
from specrob.resources import specs_dir


@dataclass
class Module:
    """A parsed file and the templates (declarations) it makes visible."""

    source: Source
    tree: ast.SpecFile
    own: dict[str, tuple[ast.Decl, Source]] = field(default_factory=dict)
    visible: dict[str, tuple[ast.Decl, Source]] = field(default_factory=dict)
    imported: list["Module"] = field(default_factory=list)


MAX_SPEC_BYTES = 1 << 20  # a spec file is text a person writes: 1 MiB is ample


def read_source(path: str | Path) -> Source:
    """A spec file's text: only a regular file (not a device, FIFO or folder), at most
    MAX_SPEC_BYTES, UTF-8; anything else is a located error."""
    import stat
    p = Path(path)
    shown = str(path)
    if p.is_dir():
        raise SpecError(f"'{shown}' is a directory, not a spec file", path=shown,
                        hint=f"give a file, e.g. {shown.rstrip('/')}/*.rspec")
    if not p.exists():
        raise SpecError(f"no such file '{shown}'", path=shown,
                        hint="check the path; spec files end in .rspec")
    try:
        with open(p, "rb", opener=lambda f, flags: os.open(f, flags | os.O_NONBLOCK)) as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise SpecError(f"'{shown}' is not a regular file (a device, FIFO or socket)",
                                path=shown, hint="give a .rspec text file")
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read '{shown}': {exc.strerror}", path=shown) from None
    kind = _binary_kind(shown, data)
    if kind is not None:
        raise SpecError(f"'{shown}' is {kind}, not an .rspec spec", path=shown,
                        hint="specrob check / train / eval take a .rspec file; a model goes "
                             "first: specrob verify MODEL.onnx SPEC.rspec (or a .vnnlib file)")
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"'{shown}' is larger than {MAX_SPEC_BYTES >> 20} MiB: not a spec file",
                        path=shown, hint="give a .rspec text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1
        line_start = before.rfind(b"\n") + 1
        col = len(before[line_start:].decode("utf-8", errors="replace")) + 1
        line_end = data.find(b"\n", exc.start)
        shown_line = data[line_start:None if line_end < 0 else line_end].decode(
            "utf-8", errors="replace")
        raise SpecError(f"invalid UTF-8 byte 0x{data[exc.start]:02x}", path=shown, line=line,
                        col=col, source_line=shown_line,
                        expected="a text file in UTF-8 encoding",
                        hint="re-save the file as UTF-8") from None
    return Source(shown, text)


def _module(source: Source, stack: tuple[Path, ...], base_dir: Path | None) -> Module:
    tree = parse(source.text, source.path)
    module = Module(source, tree)
    visible: dict[str, tuple[ast.Decl, Source]] = {}
    for imp in tree.imports:
        target = _resolve_import(imp, source, base_dir)
        if target in stack:
            chain = " -> ".join(p.name for p in (*stack[stack.index(target):], target))
            raise source.error(f"cyclic import: {chain}", imp.pos,
                               hint="remove one of the imports in this cycle")
        imported = _module(read_source(target), (*stack, target), target.parent)
        module.imported.append(imported)
        visible.update(imported.own)
    for decl in tree.decls:
        if decl.name in module.own:
            first = module.own[decl.name][0].pos.line
            raise source.error(f"'{decl.name}' is declared twice (first at line {first})",
                               decl.pos)
        module.own[decl.name] = (decl, source)
    module.visible = {**visible, **module.own}
    return module


IMPORT_ROOTS_ENV = "SPECROB_IMPORT_PATH"  # more folders imports may come from (os.pathsep)


def import_roots(base_dir: Path | None) -> list[Path]:
    """Where imports may come from: the importing spec's folder (and below), the standard
    library, and the folders in $SPECROB_IMPORT_PATH."""
    roots = [] if base_dir is None else [base_dir.resolve()]
    roots.append(specs_dir().resolve())
    roots += [Path(r).resolve() for r in os.environ.get(IMPORT_ROOTS_ENV, "").split(os.pathsep)
              if r]
    return roots


def _resolve_import(imp: ast.Import, source: Source, base_dir: Path | None) -> Path:
    """The file an import names: a .rspec file under one of `import_roots` (nothing else is
    read, so an error message never quotes another kind of file)."""
    if not imp.path.endswith(".rspec"):
        raise source.error(f"cannot import '{imp.path}': only .rspec files are imported",
                           imp.pos, expected='import "other.rspec"')
    roots = import_roots(base_dir)
    candidates = [] if base_dir is None else [base_dir / imp.path]
    candidates.append(specs_dir() / imp.path)
    for c in candidates:
        if c.is_file():
            resolved = c.resolve()
            if not any(resolved.is_relative_to(r) for r in roots):
                raise source.error(
                    f"cannot import '{imp.path}': it lies outside the spec's folder and the "
                    f"standard library", imp.pos,
                    hint=f"move it beside the spec, or allow its folder with "
                         f"{IMPORT_ROOTS_ENV}=/path/to/folder")
            return resolved
    where = " or ".join(str(c.parent) for c in candidates)
    raise source.error(f"cannot import '{imp.path}': no such file", imp.pos,
                       hint=f"looked in {where}")


@cache
def prelude() -> dict[str, tuple[ast.Decl, Source]]:
    """Templates of the standard library: every declaration in specs/*.rspec."""
    templates: dict[str, tuple[ast.Decl, Source]] = {}
    for path in sorted(specs_dir().glob("*.rspec")):
        module = _module(read_source(path), (path.resolve(),), path.parent)
        templates.update(module.own)
    return templates


def load(path: str | Path, overrides: list[Override] | None = None, *,
         use_prelude: bool = True) -> ir.Spec:
    """Read, parse and check a spec file. Raises SpecError."""
    source = read_source(path)
    resolved = Path(path).resolve()
    return _deep(source, lambda: _check(source, (resolved,), resolved.parent, overrides or [],
                                        use_prelude))


def load_text(text: str, path: str = "<spec>", overrides: list[Override] | None = None, *,
              base_dir: str | Path | None = None, use_prelude: bool = True) -> ir.Spec:
    """Parse and check spec text (imports are relative to `base_dir`). Raises SpecError."""
    base = Path(base_dir) if base_dir is not None else None
    source = Source(path, text)
    return _deep(source, lambda: _check(source, (), base, overrides or [], use_prelude))


# The parser (lark's tree transformer), the checker and sympy walk expressions recursively;
# a long sum is a deep tree. Checking runs in a thread with a large stack and a high recursion
# limit, so thousands of terms check; beyond that a RecursionError becomes a located error.
_STACK_BYTES = 512 << 20
_RECURSION_LIMIT = 60_000


def _deep(source: Source, run):
    import sys
    import threading
    from specrob.lang.parser import too_deep
    box: dict = {}

    def target():
        try:
            box["value"] = run()
        except RecursionError:
            box["error"] = too_deep(source)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    old_stack = threading.stack_size()
    old_limit = sys.getrecursionlimit()
    try:
        threading.stack_size(_STACK_BYTES)
        sys.setrecursionlimit(max(old_limit, _RECURSION_LIMIT))
        worker = threading.Thread(target=target, name="specrob-check")
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old_stack)
        sys.setrecursionlimit(old_limit)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _check(source: Source, stack: tuple[Path, ...], base_dir: Path | None,
           overrides: list[Override], use_prelude: bool) -> ir.Spec:
    module = _module(source, stack, base_dir)
    if not module.tree.decls:
        raise source.error("the spec declares nothing", ast.Pos(1, 1, 1, 2),
                           expected="a 'property' or 'score' declaration",
                           hint="e.g.  property robust = CR(eps = 0.05)")
    by_name = {o.name: o for o in overrides}
    std = prelude() if use_prelude else {}
    _SCOPES.clear()
    _collect_scopes(module, std)
    _check_imports(module, std, base_dir, set())
    templates = {**std, **module.visible}
    properties, scores = [], []
    from specrob.lang.parser import MAX_DEPTH
    from specrob.lang.walk import depth
    for decl in module.tree.decls:
        checked = _check_decl(decl, source, templates, by_name, base_dir)
        levels = depth(checked.body if isinstance(checked, ir.Property) else checked)
        if levels > MAX_DEPTH:
            raise source.error(f"'{decl.name}' nests its expressions {levels} levels deep; "
                               f"at most {MAX_DEPTH} are supported", decl.pos,
                               hint="split long sums or deep nesting into parameters or "
                                    "several properties")
        (properties if isinstance(checked, ir.Property) else scores).append(checked)
    for o in overrides:
        if not o.used:
            names = sorted({p.name for d in (*properties, *scores) for p in d.params})
            guess = did_you_mean(o.name, names)
            raise o.error(f"unknown parameter '{o.name}'",
                          expected="one of: " + (", ".join(names) or "(no parameters)"),
                          hint=f"did you mean '{guess}'?" if guess else None)
    return ir.Spec(source.path, tuple(properties), tuple(scores))


# per file (by its reported path): the templates visible there. An instance whose template is
# itself an instance written in another file is expanded with that file's templates.
_SCOPES: dict[str, dict] = {}


def _collect_scopes(module: Module, std) -> None:
    stack = [module]
    while stack:
        current = stack.pop()
        if current.source.path not in _SCOPES:
            _SCOPES[current.source.path] = {**std, **current.visible}
            stack.extend(current.imported)


def _check_imports(module: Module, std, base_dir, seen: set[str]) -> None:
    """Imported files are checked too (without --set), so their mistakes surface at once."""
    for imported in module.imported:
        if imported.source.path in seen:
            continue
        seen.add(imported.source.path)
        _check_imports(imported, std, base_dir, seen)
        templates = {**std, **imported.visible}
        for decl in imported.tree.decls:
            _check_decl(decl, imported.source, templates, {},
                        Path(imported.source.path).parent)


def _check_decl(decl: ast.Decl, source: Source, templates, overrides, base_dir):
    if isinstance(decl, ast.PropertyDef):
        params = check_params(decl.params, {}, source, overrides)
        return check_property(decl, source, params)
    if isinstance(decl, ast.ScoreDef):
        params = check_params(decl.params, {}, source, overrides)
        return check_score(decl, source, params, base_dir)
    return _instantiate(decl, source, templates, overrides)


def _instantiate(inst: ast.Instance, source: Source, templates, overrides):
    decl, t_source, kw_sources = _expand(inst, source, templates)
    params = check_params(decl.params, kw_sources, t_source, overrides)
    # Errors in the instance's own clauses point into its file, the rest into the template's.
    own = inst.centres or inst.domain or inst.settings or inst.families
    where = source if own else t_source
    if isinstance(decl, ast.PropertyDef):
        return check_property(decl, where, params, t_source)
    return check_score(decl, where, params, Path(t_source.path).parent)


def _expand(inst: ast.Instance, source: Source, templates, chain: tuple[str, ...] = ()):
    """An instance as the declaration it stands for: the template (itself perhaps an
    instance) with the instance's defaults and clauses. Returns it with the template's source
    and, per overridden parameter, the source its new default was written in. A template
    that (through others) stands for itself is an error naming the cycle."""
    if inst.name in chain:
        cycle = " -> ".join((*chain[chain.index(inst.name):], inst.name))
        raise source.error(f"circular templates: {cycle}", inst.template_pos,
                           hint="a declaration cannot be an instance of itself")
    chain = (*chain, inst.name)
    found = templates.get(inst.template)
    if found is not None and found[0] is inst:  # `property CR = CR(...)`: the standard CR
        found = prelude().get(inst.template)
    if found is None:
        kinds = [n for n, (d, _) in templates.items() if _kind(d) == inst.kind and d is not inst]
        guess = did_you_mean(inst.template, kinds)
        raise source.error(f"unknown {inst.kind} '{inst.template}'", inst.template_pos,
                           expected=f"a {inst.kind} of this file, an import or the standard "
                                    f"library: {', '.join(sorted(kinds))}",
                           hint=f"did you mean '{guess}'?" if guess else None)
    template, t_source = found
    if _kind(template) != inst.kind:
        raise source.error(f"'{inst.template}' is a {_kind(template)}, not a {inst.kind}",
                           inst.template_pos, hint=f"write: {_kind(template)} {inst.name} = "
                                                   f"{inst.template}(...)")
    kw_sources: dict[str, Source] = {}
    if isinstance(template, ast.Instance):
        scope = _SCOPES.get(t_source.path, templates)
        template, t_source, kw_sources = _expand(template, t_source, scope, chain)
    names = {p.name for p in template.params}
    values: dict[str, ast.Expr] = {}
    for kw in inst.kwargs:
        if kw.name not in names:
            guess = did_you_mean(kw.name, names)
            raise source.error(f"'{inst.template}' has no parameter '{kw.name}'", kw.pos,
                               expected="one of: " + ", ".join(sorted(names)),
                               hint=f"did you mean '{guess}'?" if guess else None)
        if kw.name in values:
            raise source.error(f"'{kw.name}' is given twice", kw.pos)
        values[kw.name] = kw.value
        kw_sources[kw.name] = source
    params = tuple(ast.Param(p.name, p.type, values.get(p.name, p.default), p.pos)
                   for p in template.params)
    centres, domain = inst.centres or template.centres, inst.domain or template.domain
    if isinstance(template, ast.PropertyDef):
        if inst.settings or inst.families:
            raise source.error("a property has no Q, H, G or families", inst.pos)
        return (ast.PropertyDef(inst.name, params, centres, domain, template.body, inst.pos),
                t_source, kw_sources)
    settings = {s.name: s for s in template.settings} | {s.name: s for s in inst.settings}
    families = {f.var: f for f in template.families} | {f.var: f for f in inst.families}
    return (ast.ScoreDef(inst.name, params, tuple(settings.values()), tuple(families.values()),
                         centres, domain, inst.pos), t_source, kw_sources)


def _kind(decl: ast.Decl) -> str:
    if isinstance(decl, ast.Instance):
        return decl.kind
    return "property" if isinstance(decl, ast.PropertyDef) else "score"


def overrides_from_cli(texts: list[str]) -> list[Override]:
    out: dict[str, Override] = {}
    for text in texts:
        o = parse_override(text)
        out[o.name] = o
    return list(out.values())


def overrides_from_api(values: dict) -> list[Override]:
    return [override_from_api(k, v) for k, v in values.items()]


def _binary_kind(name: str, data: bytes) -> str | None:
    """What a file that is plainly not a spec is (by its name and first bytes), or None."""
    lower = name.lower()
    if lower.endswith((".vnnlib", ".vnnlib.gz")):
        return "a VNN-LIB property (read by specrob verify MODEL.onnx FILE)"
    if data[:2] == b"\x1f\x8b":
        return "a gzip-compressed file"
    if lower.endswith(".onnx"):
        return "an ONNX model"
    if lower.endswith((".npz", ".pt", ".pth")) or data[:4] == b"PK\x03\x04":
        return "a binary data or checkpoint file"
    return None
