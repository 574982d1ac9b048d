"""The package's layers import one way: each imports only from the layers below it (and itself), so where a flow is
captured, stored, queried and drawn stays visible from the folder names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. `addons` (top-level folder, shipped as proxycap.addons) translate mitmproxy's hooks into capture's
# events; the control layer wires them into a session. `rules` (the rules' model and file) serve the rules addon;
# `devices` (getting clients onto the proxy) serves the setup addon, the CLI and the TUI.
LAYERS = (
    "paths", "runtime", "internals", "capture", "rules", "devices", "addons", "storage", "query", "exchange",
    "control", "tui", "cli",
)  # fmt: skip


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "proxycap" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
    return out


def _sources() -> list[tuple[Path, str]]:
    files = [
        (p, _layer("proxycap." + p.relative_to(ROOT / "proxycap").parts[0].removesuffix(".py")))
        for p in (ROOT / "proxycap").rglob("*.py")
    ]
    files += [(p, "addons") for p in (ROOT / "addons").rglob("*.py")]
    return [(p, layer) for p, layer in files if layer is not None]


def test_every_layer_imports_only_from_the_layers_below_it() -> None:
    wrong = []
    for path, layer in _sources():
        for line, module in _imports(path):
            other = _layer(module)
            if other is not None and LAYERS.index(other) > LAYERS.index(layer):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {module} ({other})")
    assert not wrong, "\n".join(wrong)


def test_the_package_never_imports_the_benchmark_or_the_tests() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path, _ in _sources()
        for line, module in _imports(path)
        if module.split(".")[0] in ("bench", "tests", "conftest")
    ]
    assert not wrong, "\n".join(wrong)
