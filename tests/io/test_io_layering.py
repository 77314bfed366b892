"""engine/io sits below the API: it may import only the leaf modules and itself."""

from __future__ import annotations

import ast
from pathlib import Path

IO = Path(__file__).resolve().parents[2] / "engine" / "io"
ALLOWED = ("engine.block", "engine.errors", "engine.context", "engine.io")


def _engine_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            found.add(node.module or "")
    return {n for n in found if n == "engine" or n.startswith("engine.")}


def test_engine_io_imports_only_leaf_modules_and_itself():
    violations = {}
    for path in sorted(IO.glob("*.py")):
        bad = [n for n in _engine_imports(path)
               if not any(n == a or n.startswith(a + ".") for a in ALLOWED)]
        if bad:
            violations[path.name] = bad
    assert not violations, f"engine/io imports above its layer: {violations}"

