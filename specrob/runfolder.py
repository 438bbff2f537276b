"""A run folder (`--out`): bound to everything that determines its results, one writer at a
time, crash-safe files.

Every command that writes results (`train`, `eval`, `verify`, `reproduce`) opens its `--out`
through `RunFolder`:

- **identity**: `run.json` records what determines the results (the model file's hash, the
  data's hash, the spec text after `--set`, the options, the seed, the specrob version). A
  rerun with the same identity resumes; any difference is refused with the differing items
  named (`--fresh` starts over, deleting only the files this kind of run writes), never
  merged. A folder with results but no `run.json` (another tool, an older specrob) is refused
  the same way.
- **one writer**: an exclusive `flock` on `.lock` for the life of the run; a second process
  is refused with the holder's pid. The kernel drops the lock when a process dies, even by
  SIGKILL, so a stale lock never blocks a resume.
- **crash-safe files**: JSON files are written to a temporary file, flushed and renamed over
  the old one (`write_json`); `results.jsonl` rows are appended whole, and a partial last line
  (a cut write, a full disk) is cut off before the next append (`JsonLines`). A corrupt JSON
  file is named in the error with the way out.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from specrob.errors import SpecrobError

__all__ = ["RunFolder", "RunFolderError", "JsonLines", "write_json", "read_json", "write_text", "lock_folder",
           "file_identity", "array_identity"]

RUN_FILE = "run.json"
LOCK_FILE = ".lock"


class RunFolderError(SpecrobError):
    """An output folder that cannot be used for this run (other run's results, another writer,
    not a folder, not writable, a corrupt file)."""


# --- identities ---------------------------------------------------------------------------

def file_identity(path: str | Path) -> dict:
    """sha256 of a file (and of an ONNX model's external `.data` files beside it), its name.

    Raises RunFolderError when the file cannot be read."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if path.suffix == ".onnx":  # the weights may live in external-data files
            from specrob.network.load import external_data_files
            try:
                extras = external_data_files(path)
            except Exception:  # noqa: BLE001 - not an ONNX model: its loader says so later
                extras = []
            for name in extras:
                extra = path.parent / name
                if extra.is_file():
                    digest.update(extra.read_bytes())
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return {"file": path.name, "sha256": digest.hexdigest()}


def array_identity(*arrays: Any) -> str:
    """sha256 over the dtypes, shapes and bytes of numpy arrays / torch tensors."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a)
        digest.update(f"{a.dtype}{a.shape}".encode())
        if a.size:  # a.tobytes()'s bytes, without the copy (220 MB for Fashion-MNIST)
            digest.update(a.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """JSON-ready copy: paths and other objects as strings, tuples as lists, NaN/inf as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted names of the items that differ between two identities."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            name = f"{prefix}.{k}" if prefix else k
            if k not in old or k not in new:
                out.append(name)
            else:
                out.extend(differences(old[k], new[k], name))
        return out
    return [] if old == new else [prefix or "(all)"]


# --- atomic files -------------------------------------------------------------------------

def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically: a temporary file in the same folder, flushed, then
    renamed over `path` (a crash leaves the old file or the new one, never half of one).

    Raises RunFolderError when the folder is not writable or the disk is full."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise RunFolderError(f"{path}: cannot write ({exc.strerror or exc}); earlier results "
                             f"are kept").with_traceback(None) from None


def json_default(value: Any) -> Any:
    """The one JSON encoding of specrob's values beyond JSON's own (`json.dumps(default=...)`):
    tensors and numpy arrays as lists, numpy scalars as numbers, paths as strings, objects
    with `as_dict()` (estimates) and dataclasses as dicts; anything else as its str()."""
    import dataclasses
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()  # torch.Tensor, np.ndarray, numpy scalars
    if isinstance(value, Path):
        return str(value)
    as_dict = getattr(value, "as_dict", None)
    if as_dict is not None:
        return as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON values (dicts, lists, numbers, strings), by `json_default`."""
    return json.loads(json.dumps(value, default=json_default))


def write_json(path: str | Path, value: Any, *, indent: int = 2, **dumps) -> None:
    """`write_text` of `json.dumps(value, indent=indent, **dumps)`: atomic."""
    write_text(path, json.dumps(value, indent=indent, **dumps))


def read_json(path: str | Path, fix: str = "use --fresh to start over") -> Any:
    """Read a JSON file; a corrupt one raises RunFolderError naming it and the way out."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: corrupt JSON (line {exc.lineno}, column {exc.colno}: "
                             f"{exc.msg}); {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc}); "
                             f"{fix}") from None


class JsonLines:
    """An append-only file of JSON rows (`results.jsonl`), safe against cut writes.

    `rows()` reads every whole row and cuts a partial last line off the file (it is what an
    interrupted or failed write leaves; its centre runs again), so the next `append` starts on
    a fresh line. Each row is written with one `write` call followed by a flush and fsync."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise RunFolderError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a partial last line: drop it from the file too
            with self.path.open("r+b") as f:
                f.truncate(end)
        rows = []
        for number, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise RunFolderError(f"{self.path}:{number}: corrupt row; remove that line or "
                                     f"use --fresh to start over") from None
        return rows

    def append(self, row: dict) -> None:
        text = json.dumps(row) + "\n"
        try:
            with self.path.open("a") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise RunFolderError(f"{self.path}: cannot append ({exc.strerror or exc}); "
                                 f"finished rows are kept, run again to resume") from None

    def clear(self) -> None:
        try:
            self.path.write_text("")
        except OSError as exc:
            raise RunFolderError(f"{self.path}: cannot write ({exc.strerror or exc})") from None


# --- the folder ---------------------------------------------------------------------------

def lock_folder(path: str | Path):
    """Take the exclusive lock of a folder (a `flock` on <path>/.lock, holding our pid) and
    return the open handle: the lock lasts until the handle is closed or the process ends.
    Raises RunFolderError when another process holds it."""
    import fcntl
    path = Path(path)
    try:
        handle = open(path / LOCK_FILE, "a+")
    except OSError as exc:
        raise RunFolderError(f"--out {path}: cannot create its lock file "
                             f"({exc.strerror or exc})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderError(f"{path} is in use by another specrob run (pid {holder}); wait "
                             f"for it to finish or choose another folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def bind_settings(folder: Path, values: dict, *, file: str = "settings.json") -> None:
    """A folder whose identity grows stage by stage (a reproduction: first its data, then its
    budget): each value must equal the one the folder was made with, or RunFolderError names
    the differing items (`--fresh` starts over); new values are added. The same policy as
    `RunFolder`'s, for folders that learn their settings as they go."""
    path = Path(folder) / file
    stored = read_json(path, "rerun with --fresh") if path.exists() else {}
    values = json.loads(json.dumps(values, default=str))
    changed = sorted(k for k, v in values.items() if k in stored and stored[k] != v)
    if changed:
        raise RunFolderError(
            f"{folder} holds networks and stages made with another {', '.join(changed)}"
            f"; rerun with --fresh to discard them, or choose another --work")
    write_json(path, {**stored, **values}, indent=1, sort_keys=True)


class RunFolder:
    """An output folder bound to one run's identity and held by one process.

    Args:
        path: the `--out` folder (created if missing).
        kind: what writes it ("train", "eval", "verify", "reproduce"); a folder of another
            kind is refused.
        identity: JSON-able dict of everything that determines the results.
        files: the names this kind of run writes; `--fresh` deletes these (and run.json) only.
        fresh: start over instead of resuming.

    Use as a context manager (`with RunFolder(...) as run:`); `run.resumed` says whether the
    folder already held this run. Raises RunFolderError (mismatch, lock held, not a folder,
    not writable).
    """

    def __init__(self, path: str | Path, kind: str, identity: dict, files: Iterable[str],
                 *, fresh: bool = False):
        self.path, self.kind = Path(path), kind
        self.identity = _plain(identity)
        self.files = tuple(files)
        self.fresh = fresh
        self.resumed = False
        self._lock = None

    def __enter__(self) -> "RunFolder":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def file(self, name: str) -> Path:
        return self.path / name

    def open(self) -> None:
        self._make()
        self._acquire()
        try:
            self._bind()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def _make(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"--out {self.path} is a file, not a folder; choose a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"--out {self.path}: cannot create the folder "
                                 f"({exc.strerror or exc}); choose a writable folder") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise RunFolderError(f"--out {self.path}: the folder is not writable; choose a "
                                 f"writable folder")

    def _acquire(self) -> None:
        self._lock = lock_folder(self.path)

    def _bind(self) -> None:
        from specrob import __version__
        record = {"kind": self.kind, "specrob": __version__, "identity": self.identity}
        run_file = self.path / RUN_FILE
        if self.fresh:
            self.remove_results()
        elif run_file.exists():
            old = read_json(run_file, "use --fresh to start over, or another --out")
            if not isinstance(old, dict) or old.get("kind") != self.kind:
                raise RunFolderError(
                    f"--out {self.path} holds a '{old.get('kind') if isinstance(old, dict) else '?'}'"
                    f" run, not a {self.kind} run; choose another --out")
            differ = differences({"specrob": old.get("specrob"), **(old.get("identity") or {})},
                                  {"specrob": __version__, **self.identity})
            if differ:
                shown = ", ".join(differ[:8]) + (", ..." if len(differ) > 8 else "")
                raise RunFolderError(
                    f"--out {self.path} holds the results of another run (differing: {shown}); "
                    f"use --fresh to discard them and start over, or choose another --out")
            self.resumed = True
            return
        elif any(any(self.path.glob(name)) for name in self.files):
            raise RunFolderError(
                f"--out {self.path} holds results that no run.json describes (another tool or "
                f"an older specrob); use --fresh to discard them, or choose another --out")
        write_json(run_file, record)

    def remove_results(self) -> None:
        """Delete the files this kind of run writes, and run.json (nothing else)."""
        names = [p.name for f in self.files for p in self.path.glob(f)] + [RUN_FILE]
        for name in names:
            target = self.path / name
            try:
                if target.is_dir():
                    import shutil
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            except OSError as exc:
                raise RunFolderError(f"{target}: cannot remove ({exc.strerror or exc})") from None


# --- shard folders of one run (`--shard i/N`, joined by `specrob merge`) -------------------

class ShardError(RunFolderError):
    """Shard folders that do not make one run."""


def without_shard(record: dict, options_key: str) -> dict:
    """A shard's run.json as the run's own: its options without `shard`."""
    identity = dict(record.get("identity") or {})
    identity[options_key] = {k: v for k, v in (identity.get(options_key) or {}).items()
                             if k != "shard"}
    return {"specrob": record.get("specrob"), "identity": identity}


def shard_folders(folders: list[Path], *, kind: str, options_key: str
                  ) -> tuple[list[dict], list[int], int]:
    """The run.json records of the N shard folders of one `specrob <kind>` run (their
    identities' `options_key` holds "shard": "i/N"), each folder's shard i, and N. Raises
    ShardError naming the folder: not a shard of this kind, another N, a repeated or missing
    shard, another run (naming what differs)."""
    from specrob.options import shard_of
    if not folders:
        raise ShardError("give the shard folders to merge")
    article = "an" if kind[0] in "aeiou" else "a"
    records, indices = [], []
    for folder in folders:
        path = folder / RUN_FILE
        record = read_json(path) if path.is_file() else None
        options = ((record or {}).get("identity") or {}).get(options_key) \
            if isinstance(record, dict) else None
        if not isinstance(record, dict) or record.get("kind") != kind or \
                not isinstance(options, dict):
            raise ShardError(f"{folder}: not {article} {kind} run folder (no {kind} "
                             f"{RUN_FILE}); give the --out folders of `specrob {kind} "
                             f"--shard i/N`")
        shard = shard_of(str(options["shard"])) if options.get("shard") else None
        if shard is None:
            raise ShardError(f"{folder}: a whole run, not a shard (no --shard i/N); nothing "
                             f"to merge")
        records.append(record)
        indices.append(shard)
    n = indices[0][1]
    seen: dict[int, Path] = {}
    for folder, record, (i, count) in zip(folders, records, indices):
        if count != n:
            raise ShardError(f"{folder}: shard {i}/{count}, but {folders[0]} is one of {n}")
        if i in seen:
            raise ShardError(f"{folder} and {seen[i]} are both shard {i}/{n}")
        seen[i] = folder
        differ = differences(without_shard(records[0], options_key),
                             without_shard(record, options_key))
        if differ:
            raise ShardError(f"{folder} belongs to another run than {folders[0]} (differing: "
                             f"{', '.join(differ[:8])})")
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise ShardError(f"shard{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(f'{i}/{n}' for i in missing)} missing; run `specrob "
                         f"{kind} ... --shard {missing[0]}/{n}`"
                         + (" (and the others)" if len(missing) > 1 else ""))
    return records, [i for i, _ in indices], n
