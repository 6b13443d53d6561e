"""Which source files a job executes, from the import graph, so that editing one of them reruns the job.

A rule names its entry points (a workflow script, or the modules ``python -m`` runs) and
:meth:`SourceGraph.files` walks their imports (``ast``, every ``import`` statement in the file, the lazy ones
inside functions included) transitively inside the ``ecorec`` package. Rules to stay on the safe side:

- importing ``ecorec.a.b`` runs ``ecorec/__init__.py`` and ``ecorec/a/__init__.py`` too: both are included;
- ``from ecorec.a import name``: the submodule ``ecorec/a/name.py`` when there is one, else the package's
  ``__init__.py``; a package whose ``__init__`` defines a module-level ``__getattr__`` (lazy exports) resolves
  names at run time, so all of its modules are included;
- a package's data folders (subfolders without ``__init__.py``, e.g. ``ecorec/data/resources``) are included
  with the package, and ``ecorec.kernels`` brings the CUDA sources of ``kernels/``;
- ``ecorec.workflow`` is left out: it computes a job's inputs and params, whose changes Snakemake tracks
  itself; it does not change what a job computes.

Dynamic imports (``importlib.import_module(f"ecorec.bench.{name}")``) are invisible: name such a module as an
entry point (the ``bench`` rules name ``ecorec.bench.tt``). This module only reads files: it imports nothing
it hashes (standard library only).
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

_PACKAGE = "ecorec"
_EXCLUDED = ("ecorec.workflow",)


class SourceGraph:
    """The import graph of the ``ecorec`` package under ``root`` (the repository root).

    An instance reads, parses and hashes each file once (a Snakefile parse asks for every rule's hash): it is
    a snapshot of the tree; after editing files, make a new one.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.package_dir = self.root / _PACKAGE
        if not (self.package_dir / "__init__.py").is_file():
            raise FileNotFoundError(f"{self.package_dir}: no ecorec package here")
        # one Snakefile parse asks for dozens of rules' hashes: parse, stat and read each file once
        self._imports = cache(self._imports_of)
        self._lazy = cache(self._is_lazy_package)
        self._file_of = cache(self.module_file)
        self._data = cache(lambda package_dir: tuple(self._data_folders(package_dir)))
        self._digest = cache(self._file_digest)

    # -- module <-> file ------------------------------------------------------------------------------------
    def module_file(self, module: str) -> Path | None:
        """The file of an ``ecorec`` module or package (``__init__.py``), or ``None`` if there is none."""
        parts = module.split(".")
        if parts[0] != _PACKAGE:
            return None
        base = self.root.joinpath(*parts)
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
        file = base.with_suffix(".py")
        return file if file.is_file() else None

    def _module_of(self, file: Path) -> str:
        rel = file.relative_to(self.root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    # -- the graph ------------------------------------------------------------------------------------------
    def _imports_of(self, file: Path) -> tuple[str, ...]:
        """The ``ecorec`` modules one file imports (absolute names)."""
        tree = ast.parse(file.read_text(), filename=str(file))
        is_package = file.name == "__init__.py"
        here = self._module_of(file).split(".") if file.is_relative_to(self.package_dir) else []
        out: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = here if is_package else here[:-1]
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join([*base_parts, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                out.append(base)
                out.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        return tuple(name for name in out if name.split(".")[0] == _PACKAGE)

    def _with_parents(self, module: str) -> list[str]:
        parts = module.split(".")
        return [".".join(parts[: i + 1]) for i in range(len(parts))]

    def _package_files(self, package: str) -> list[Path]:
        folder = self.root.joinpath(*package.split("."))
        return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)

    def _is_lazy_package(self, init: Path) -> bool:
        tree = ast.parse(init.read_text(), filename=str(init))
        return any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)

    def files(self, *entries: str | os.PathLike[str]) -> list[Path]:
        """Every file the entry points execute: entries are module names (``"ecorec.bench.tt"``) or paths of
        scripts (``workflow_scripts/x.py``, hashed themselves); sorted, the package's data folders and
        ``kernels/`` included. An entry that does not exist raises ``FileNotFoundError``."""
        seen: set[Path] = set()
        extra: set[Path] = set()
        todo: list[Path] = []
        for entry in entries:
            text = os.fspath(entry)
            if text.endswith((".py", ".sh")) or os.sep in text:
                path = Path(text) if Path(text).is_absolute() else self.root / text
                if not path.is_file():
                    raise FileNotFoundError(f"source entry point {text!r}: no file {path}")
                todo.append(path.resolve())
                continue
            file = self.module_file(text)
            if file is None:
                raise FileNotFoundError(
                    f"source entry point {text!r}: no module of that name under {self.root}"
                )
            todo.append(file)
            todo.extend(f for f in map(self.module_file, self._with_parents(text)) if f is not None)
        while todo:
            file = todo.pop()
            if file in seen:
                continue
            seen.add(file)
            if file.suffix != ".py":
                continue
            for name in self._imports(file):
                if name.startswith(_EXCLUDED):
                    continue
                for module in self._with_parents(name):
                    target = self._file_of(module)
                    if target is None:
                        continue
                    todo.append(target)
                    if target.name == "__init__.py":
                        if module == name and self._lazy(target):
                            todo.extend(self._package_files(module))
                        extra.update(self._data(target.parent))
                if name == "ecorec.kernels" or name.startswith("ecorec.kernels."):
                    kernels = self.root / "kernels"
                    if kernels.is_dir():
                        extra.add(kernels)
        return sorted(seen | extra)

    def _data_folders(self, package_dir: Path) -> Iterable[Path]:
        for child in package_dir.iterdir():
            if child.is_dir() and child.name != "__pycache__" and not (child / "__init__.py").exists():
                yield child

    def modules(self, *entries: str | os.PathLike[str]) -> list[str]:
        """The ``ecorec`` module names among :meth:`files` (for messages and tests)."""
        return sorted(
            self._module_of(f)
            for f in self.files(*entries)
            if f.suffix == ".py" and f.is_relative_to(self.package_dir)
        )

    def hash(self, *entries: str | os.PathLike[str]) -> str:
        """sha256 over the repository-relative path and content of every file of :meth:`files` (folders:
        their files, ``__pycache__`` skipped): the ``src`` param of a rule. Content, not mtime."""
        digest = hashlib.sha256()
        for path in self.files(*entries):
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                if "__pycache__" in file.parts:
                    continue
                digest.update(self._digest(file))
        return digest.hexdigest()

    def _file_digest(self, file: Path) -> bytes:
        """What one file adds to :meth:`hash`: its repository-relative path and content."""
        return f"{file.relative_to(self.root).as_posix()}\0".encode() + file.read_bytes() + b"\0"
