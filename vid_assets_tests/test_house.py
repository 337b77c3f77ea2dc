"""The house rules a newcomer relies on (issue 25), checked on the source so they stay true."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vid_assets"


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def _reads_env(node: ast.AST) -> str | None:
    """The ``VID_ASSETS_*`` name this node reads from the environment, if it does."""
    name = None
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        f = node.func
        text = ast.unparse(f)
        if text in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
            name = node.args[0].value
    elif (
        isinstance(node, ast.Subscript)
        and ast.unparse(node.value) in ("os.environ", "environ")
        and isinstance(node.slice, ast.Constant)
    ):
        name = node.slice.value
    return name if isinstance(name, str) and name.startswith("VID_ASSETS_") else None


def test_settings_is_the_only_reader_of_vid_assets_variables():
    readers = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} reads {name}"
        for path, tree in _modules()
        if path.name != "settings.py"
        for node in ast.walk(tree)
        if (name := _reads_env(node))
    ]
    assert readers == []


def test_the_env_check_sees_a_read():
    """The rule above would catch one: a read written the usual ways is found."""
    tree = ast.parse("import os\na = os.environ.get('VID_ASSETS_X')\nb = os.environ['VID_ASSETS_Y']\n")
    assert sorted(n for node in ast.walk(tree) if (n := _reads_env(node))) == ["VID_ASSETS_X", "VID_ASSETS_Y"]


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 350, 60


def test_no_module_or_function_is_too_long_to_read():
    """A room a newcomer reads in one sitting: modules up to 350 lines, functions up to 60."""
    long_modules = [
        f"{p.relative_to(PACKAGE)}: {n} lines"
        for p, _ in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    long_functions = [
        f"{p.relative_to(PACKAGE)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
        for p, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long_modules == [] and long_functions == []
