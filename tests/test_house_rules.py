"""The house checks of DESIGN.md and STYLE.md, run as part of the test suite.

ruff over the tree, `mypy --strict` over core/ (plain mypy over the other layers), and the
import-linter contracts (core/ imports no outer layer and no I/O library; controllers/ never
import simulators/). The import package
`metalcubed` maps the repository's folders (setup.py), so the type checker and import-linter
see it through a tree of symlinks named the way the package is imported.
"""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "core", "controllers", "simulators", "scenarios")


@pytest.fixture(scope="module")
def package_tree(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    top = tmp_path_factory.mktemp("typecheck")
    (top / "metalcubed").mkdir()
    for name in PACKAGES:
        (top / "metalcubed" / name).symlink_to(ROOT / name, target_is_directory=True)
    return top


def _run(args: list[str], cwd: pathlib.Path, env_path: pathlib.Path | None = None) -> str:
    env = None
    if env_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(env_path), "MYPYPATH": str(env_path)}
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_ruff_is_clean() -> None:
    assert shutil.which("ruff"), "ruff is missing: pip install -e '.[dev]'"
    _run(["ruff", "check", "."], ROOT)


def test_core_passes_mypy_strict(package_tree: pathlib.Path) -> None:
    _run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "-p",
            "metalcubed.core",
        ],
        package_tree,
        package_tree,
    )


def test_outer_layers_pass_mypy(package_tree: pathlib.Path) -> None:
    """controllers/, simulators/ and cli/ are typed too (strict is for core/: the outer layers
    subclass untyped library classes such as sushy's resources)."""
    _run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "-p", "metalcubed.controllers", "-p", "metalcubed.simulators", "-p", "metalcubed.cli"],
        package_tree,
        package_tree,
    )


def test_import_contracts_hold(package_tree: pathlib.Path) -> None:
    assert shutil.which("lint-imports"), "import-linter is missing: pip install -e '.[dev]'"
    out = _run(
        ["lint-imports", "--config", str(ROOT / "pyproject.toml")], package_tree, package_tree
    )
    assert "broken" not in out.split("Contracts:")[-1] or " 0 broken" in out
