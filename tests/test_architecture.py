"""The shape STYLE.md asks for, checked by parsing every module: imports flow node <- compose <- orchestrator,
and kernel-touching calls (pyroute2, subprocess, mount) live only in driver modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("node", "compose", "orchestrator")
# What each package may import of ours.
ALLOWED = {"node": {"node"}, "compose": {"node", "compose"}, "orchestrator": {"node", "compose", "orchestrator"}}
KERNEL_MODULES = {"pyroute2", "subprocess"}
# Modules allowed to touch the kernel directly: drivers, the daemon's process plumbing, CLIs that exec.
DRIVER_PARTS = ("drivers", "driver", "runtime", "storage", "network", "lab", "daemon", "bootstrap", "agent",
                "cli", "netns", "nft", "cgroups", "volumes")


def _modules() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.module, node.lineno))
    return names


def test_imports_flow_one_way() -> None:
    wrong = []
    for path in _modules():
        package = path.relative_to(ROOT).parts[0]
        for name, lineno in _imports(path):
            top = name.split(".")[0]
            if top in PACKAGES and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    assert not wrong, "wrong-way imports:\n" + "\n".join(wrong)


def test_kernel_calls_only_in_drivers() -> None:
    wrong = []
    for path in _modules():
        rel = path.relative_to(ROOT)
        if any(part in DRIVER_PARTS or part.removesuffix(".py") in DRIVER_PARTS for part in rel.parts):
            continue
        for name, lineno in _imports(path):
            if name.split(".")[0] in KERNEL_MODULES:
                wrong.append(f"{rel}:{lineno} imports {name}")
    assert not wrong, "kernel access outside driver modules:\n" + "\n".join(wrong)


def test_the_check_itself_catches_a_wrong_way_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from orchestrator.model import Task\n")
    assert _imports(bad) == [("orchestrator.model", 1)]
