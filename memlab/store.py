"""The results store: entries under keys derived from all that determines them.

An entry is `<key><kind>.json` (the spec that made it, its results, timing, and the sha256 of
its arrays) plus `<key><kind>.npz` (its arrays). A trained model is an entry of kind "" (its
learned parameters, float32 as trained); its evaluation one of kind ".eval"; a run in progress
a checkpoint ".ckpt", so sweeps resume mid-training across sessions. Writes are atomic
(temporary file, fsync, rename; the JSON last, so it marks a complete entry). Reading checks
the JSON parses, names its own key, and that the arrays match their recorded hash; a corrupt
or partial entry is reported, moved aside as `<name>.corrupt` and treated as missing, so it is
recomputed and never silently reused.

A key holds the fingerprint of the code that computes its entry (`code_fingerprint`): found
by following, from the functions that compute it, every memlab function, class and constant
they use, so that no list of modules has to be kept by hand."""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import io
import json
import os
import sys
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

def _strip(tree: ast.AST) -> ast.AST:
    """The tree without docstrings and type annotations: edits to prose or hints do not change it."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        if isinstance(node, (ast.arg, ast.AnnAssign)):
            node.annotation = ast.Constant(None)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
    return tree


def _ours(obj) -> bool:
    """A function or class defined in memlab."""
    return (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.split(".")[0] == "memlab"


def _value(value, todo: list) -> str:
    """A module constant as text; a memlab function or class inside it is named and queued."""
    if _ours(value):
        todo.append(value)
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}({', '.join(_value(v, todo) for v in value)})"
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}({sorted(_value(v, todo) for v in value)})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_value(k, todo)}: {_value(v, todo)}" for k, v in value.items()) + "}"
    return repr(value)


def code_fingerprint(*roots) -> str:
    """sha256 (16 hex digits) of the code that `roots` (functions or classes of memlab) run: their
    source and, found by following the names it uses, every memlab function, class and module
    constant they reach, without docstrings and type annotations. Editing anything on that path
    changes it; editing prose, a type hint or code the roots never reach (a figure, a chapter) does not."""
    return _fingerprint(tuple(roots))


@functools.lru_cache(maxsize=8)
def _fingerprint(roots: tuple) -> str:
    """Cached: the code that runs is the code imported, so it is fixed for the process's life."""
    texts, todo = {}, list(roots)
    while todo:
        obj = todo.pop()
        name = f"{obj.__module__}.{obj.__qualname__}"
        if name in texts:
            continue
        tree = _strip(ast.parse(textwrap.dedent(inspect.getsource(obj))))
        texts[name] = ast.dump(tree, annotate_fields=False)
        scope = vars(sys.modules[obj.__module__])
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and inspect.ismodule(scope.get(node.value.id)):
                home, attr = scope[node.value.id], node.attr                   # module.attr
            elif isinstance(node, ast.Name) and node.id in scope:
                home, attr = sys.modules[obj.__module__], node.id
            else:
                continue
            value = getattr(home, attr, None)
            if not home.__name__.startswith("memlab"):
                continue
            if _ours(value):
                todo.append(value)
            elif not (inspect.ismodule(value) or callable(value)):           # a constant
                texts[f"{home.__name__}.{attr}"] = _value(value, todo)
    h = hashlib.sha256()
    for name in sorted(texts):
        h.update(f"{name}\n{texts[name]}\n".encode())
    return h.hexdigest()[:16]


def make_key(spec: dict) -> str:
    """The key of a spec: sha256 (24 hex digits) of its canonical JSON."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


class CorruptEntry(RuntimeError):
    """A stored file that cannot be trusted."""


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """A folder of entries; `get` returns None for a missing or corrupt entry.

    also: folders where `get` looks for an entry that `root` lacks (never for checkpoints;
    `put` writes to `root` only). A key names everything that determines its entry, so an
    entry stored by another profile with the same data and protocol serves as it is.
    """

    def __init__(self, root: str | Path, also: Sequence[str | Path] = ()):
        self.root = Path(root)
        self.also = [Path(folder) for folder in also]

    def _paths(self, key: str, kind: str = "") -> tuple[Path, Path]:
        return self.root / f"{key}{kind}.json", self.root / f"{key}{kind}.npz"

    def put(self, key: str, record: dict, arrays: dict[str, np.ndarray] | None = None, kind: str = "") -> None:
        """Write an entry atomically: arrays first, then the JSON that names their hash."""
        self.root.mkdir(parents=True, exist_ok=True)
        meta_path, npz_path = self._paths(key, kind)
        blob = _npz_bytes({k: np.asarray(v) for k, v in (arrays or {}).items()})
        _atomic_write(npz_path, blob)
        record = {**record, "key": key, "arrays_sha256": _sha(blob)}
        _atomic_write(meta_path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())

    def _read(self, key: str, kind: str) -> tuple[dict, dict[str, np.ndarray]]:
        meta_path, npz_path = self._paths(key, kind)
        try:
            record = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorruptEntry(f"{meta_path}: not valid JSON ({err})") from err
        if not isinstance(record, dict) or record.get("key") != key:
            raise CorruptEntry(f"{meta_path}: does not name its own key {key}")
        try:
            blob = npz_path.read_bytes()
        except FileNotFoundError as err:
            raise CorruptEntry(f"{npz_path}: missing (a partial entry)") from err
        if _sha(blob) != record.get("arrays_sha256"):
            raise CorruptEntry(f"{npz_path}: contents do not match the hash recorded in {meta_path.name}")
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return record, arrays

    def get(self, key: str, kind: str = "") -> tuple[dict, dict[str, np.ndarray]] | None:
        """(record, arrays) of a complete entry, from `root` or else from the `also` folders;
        None if missing; a corrupt one is reported, moved aside and reported missing."""
        meta_path, npz_path = self._paths(key, kind)
        if not meta_path.exists():
            elsewhere = [folder for folder in self.also if kind != ".ckpt" and (folder / meta_path.name).exists()]
            return Store(elsewhere[0]).get(key, kind) if elsewhere else None
        try:
            return self._read(key, kind)
        except CorruptEntry as err:
            warnings.warn(f"corrupt stored result, moved aside and recomputed: {err}", stacklevel=2)
            for path in (meta_path, npz_path):
                if path.exists():
                    os.replace(path, path.with_name(path.name + ".corrupt"))
            return None

    def checkpoints(self) -> dict[str, dict]:
        """The records of the checkpoints in `root` by key, from their JSON alone (one that is
        unreadable or written or removed meanwhile is left out; read a checkpoint with
        get(key, ".ckpt"))."""
        records = {}
        for path in sorted(self.root.glob("*.ckpt.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(record, dict) and record.get("key") == path.name.removesuffix(".ckpt.json"):
                records[record["key"]] = record
        return records

    def drop(self, key: str, kind: str = "") -> None:
        for path in self._paths(key, kind):
            path.unlink(missing_ok=True)
