"""Imports go downward only (ARCHITECTURE.md, "Layers and who may import whom").

Walks the ``ast`` of every module under ``engine/`` (imports inside functions and
``TYPE_CHECKING`` blocks count too: they are still dependencies) and fails on a violation:

* ``engine/runtime`` imports nothing of ``engine.logical``, ``engine.physical``,
  ``engine.io`` or the API modules (it is a general task/actor runtime);
* ``engine/logical`` imports nothing of ``engine.physical`` or ``engine.runtime``;
* ``engine/physical`` imports only the runtime's contract, ``engine.runtime.interfaces``;
* the leaf modules import nothing of the engine except each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "engine"

LEAVES = {"engine.block", "engine.errors", "engine.context", "engine.expressions",
          "engine.aggregate", "engine.aggregate_profile", "engine.datatype",
          "engine.object_column", "engine.private_memory"}


def _is_leaf(module: str) -> bool:
    """Whether ``module`` is a leaf module or inside a leaf package (engine.expressions)."""
    return any(_within(module, leaf) for leaf in LEAVES)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def engine_imports(path: Path) -> set[str]:
    """Every ``engine...`` module ``path`` imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if _is_package(path) else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from engine import session` imports engine.session, not just engine
            names = [f"{prefix}.{alias.name}" for alias in node.names]
            names = [n for n in names if _exists(n)] or [prefix]
        else:
            continue
        found |= {n for n in names if n == "engine" or n.startswith("engine.")}
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    root = ENGINE.parent
    return (root / rel).with_suffix(".py").exists() or (root / rel / "__init__.py").exists()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _forbidden(module: str) -> list[str]:
    """Module prefixes ``module`` must not import."""
    if _within(module, "engine.runtime"):
        api = [f"engine.{p.stem}" for p in ENGINE.glob("*.py")
               if f"engine.{p.stem}" not in LEAVES and p.stem != "__init__"]
        # the API's own folders (consumption, splits, ...) too
        api += [f"engine.{d.name}" for d in ENGINE.iterdir()
                if (d / "__init__.py").exists() and f"engine.{d.name}" not in LEAVES
                and d.name not in ("runtime", "logical", "physical", "io")]
        return ["engine.logical", "engine.physical", "engine.io", *api]
    if _within(module, "engine.logical"):
        return ["engine.physical", "engine.runtime"]
    if _within(module, "engine.physical"):
        # The planner and executor see the runtime only through its written contract.
        return [f"engine.runtime.{p.stem}" for p in (ENGINE / "runtime").glob("*.py")
                if p.stem not in ("__init__", "interfaces")]
    return []


MODULES = sorted(ENGINE.rglob("*.py"))


def test_modules_found():
    names = {_module_name(p) for p in MODULES}
    assert {"engine.dataset", "engine.runtime.cluster", "engine.logical.operators",
            "engine.physical.executor"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_layering(path: Path):
    module = _module_name(path)
    imports = engine_imports(path)
    bad = sorted(i for i in imports for f in _forbidden(module) if _within(i, f))
    assert not bad, f"{module} imports {bad}, against the layering rules"
    if _is_leaf(module):
        outside = sorted(i for i in imports if i != "engine" and not _is_leaf(i))
        assert not outside, f"leaf module {module} imports {outside} of the engine"
        assert "engine" not in imports, f"leaf module {module} imports the engine package"


def test_checker_catches_violations(tmp_path: Path, monkeypatch):
    """The walker sees plain, relative, aliased and function-local imports."""
    fake = tmp_path / "engine"
    (fake / "runtime").mkdir(parents=True)
    (fake / "physical").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "runtime" / "__init__.py").write_text("")
    (fake / "physical" / "__init__.py").write_text("")
    (fake / "physical" / "executor.py").write_text("")
    (fake / "dataset.py").write_text("")
    mod = fake / "runtime" / "bad.py"
    mod.write_text("import os\n"
                   "def f():\n"
                   "    from ..physical import executor\n"
                   "    import engine.dataset as d\n")
    monkeypatch.setattr(f"{__name__}.ENGINE", fake)
    assert engine_imports(mod) == {"engine.physical.executor", "engine.dataset"}
    assert any(_within("engine.dataset", f) for f in _forbidden("engine.runtime.bad"))
