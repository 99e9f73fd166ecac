"""The code passes the linter configured in pyproject.toml ([tool.ruff]), so style problems fail CI like bugs do."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ruff_check_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "glm_hf", "recipes", "tests", "benchmarks"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_command_calls_another_commands_main():
    """Commands call each other's typed functions (``pretrain``, ``finetune``, ...), never a ``main(argv)``: only
    the ``glm-hf`` entry point (cli.py) dispatches a command line to a command's ``main``."""
    import ast

    package = os.path.join(REPO, "glm_hf")
    offenders = []
    for name in sorted(os.listdir(package)):
        if not name.endswith(".py") or name == "cli.py":
            continue
        with open(os.path.join(package, name), encoding="utf-8") as f:
            tree = ast.parse(f.read(), name)
        for node in ast.walk(tree):
            calls_a_modules_main = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                                    and node.func.attr == "main")
            imports_a_main = isinstance(node, ast.ImportFrom) and any(alias.name == "main" for alias in node.names)
            if calls_a_modules_main or imports_a_main:
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, offenders
