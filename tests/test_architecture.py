"""The layer contracts CI checks (docs/architecture.md): which package may import which, read from the source of
every module, function-level imports included, so an arrow that points the wrong way fails here.

    errors, settings  <-  core  <-  io, model, world  <-  features, training, serving  <-  cli

``core`` is pure (no Feast, MLflow, BentoML, web framework, database driver or pandas); ``io`` is storage shared
by training and serving; training never imports serving and serving never imports training.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder of each layer (features/, training/ and serving/ install as nextbest.<name>).
FOLDERS = {
    "core": ROOT / "nextbest" / "core",
    "io": ROOT / "nextbest" / "io",
    "model": ROOT / "nextbest" / "model",
    "world": ROOT / "nextbest" / "world",
    "cli": ROOT / "nextbest" / "cli",
    "features": ROOT / "features",
    "training": ROOT / "training",
    "serving": ROOT / "serving",
    "errors": ROOT / "nextbest" / "errors.py",
    "settings": ROOT / "nextbest" / "settings.py",
}
#: What each layer may import of ours (itself always).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "settings": {"errors"},
    "core": {"errors"},
    "io": {"core", "errors"},
    "model": {"core", "errors"},
    "world": {"core", "errors"},
    "features": {"core", "errors", "settings"},
    "training": {"core", "errors", "settings", "io", "model", "world", "features"},
    "serving": {"core", "errors", "settings", "io", "model", "features", "package"},
    "cli": set(FOLDERS) | {"package"},
}
#: Third-party packages a layer must not import.
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "core": {"feast", "mlflow", "bentoml", "fastapi", "starlette", "lightgbm", "sklearn", "pandas", "psycopg", "redis"},
    "io": {"feast", "mlflow", "bentoml", "fastapi", "starlette", "lightgbm", "sklearn"},
    "model": {"feast", "bentoml", "fastapi", "starlette", "psycopg"},
    "training": {"bentoml", "fastapi", "starlette"},
}


def layer_of(module: str) -> str | None:
    """The layer of an absolute module name of ours (None for anything else); ``package`` is ``nextbest``
    itself (its version)."""
    parts = module.split(".")
    if parts[0] != "nextbest":
        return None
    if len(parts) == 1:
        return "package"
    return parts[1] if parts[1] in FOLDERS else None


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` of every absolute import in a file, at any depth (function-level imports too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def violations(layer: str, files: list[Path]) -> list[str]:
    out = []
    allowed = ALLOWED[layer] | {layer}
    banned = FORBIDDEN_THIRD_PARTY.get(layer, set())
    for path in files:
        for line, module in imports(path):
            target = layer_of(module)
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"
            if target is not None and target not in allowed:
                out.append(f"{where}: {layer} imports {module} ({target})")
            if target is None and module.split(".")[0] in banned:
                out.append(f"{where}: {layer} imports {module}")
    return out


def sources(layer: str) -> list[Path]:
    folder = FOLDERS[layer]
    return [folder] if folder.is_file() else sorted(folder.rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FOLDERS))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    files = sources(layer)
    assert files, f"no sources for layer {layer}"
    found = violations(layer, files)
    assert not found, "\n".join(found)


def test_every_package_has_a_layer() -> None:
    """A new package under nextbest/ must be placed in the layer order before it can be imported."""
    packages = {p.name for p in (ROOT / "nextbest").iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in (ROOT / "nextbest").glob("*.py") if p.stem not in ("__init__",)}
    assert packages | modules <= set(FOLDERS), (packages | modules) - set(FOLDERS)


def test_the_checker_catches_a_wrong_arrow(tmp_path: Path) -> None:
    """The checks above can fail: training reaching into serving (inside a function), core importing pandas."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import numpy as np\n"
        "def f():\n"
        "    from nextbest.serving.decision_output import record\n"
        "    import pandas\n"
        "    from nextbest.io.decision_log import open_decision_log\n"
    )
    assert violations("training", [bad]) == [f"{bad}:3: training imports nextbest.serving.decision_output (serving)"]
    assert violations("core", [bad]) == [
        f"{bad}:3: core imports nextbest.serving.decision_output (serving)",
        f"{bad}:4: core imports pandas",
        f"{bad}:5: core imports nextbest.io.decision_log (io)",
    ]
