"""The house checks of DESIGN.md and STYLE.md, run as part of the test suite.

ruff over the tree, `mypy --strict` over core/ (plain mypy over the other layers), and the
import-linter contracts (core/ imports no outer layer and no I/O library; controllers/ never
import simulators/). The import package
`metalcubed` maps the repository's folders (setup.py), so the type checker and import-linter
see it through a tree of symlinks named the way the package is imported.
"""

import ast
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "core", "controllers", "simulators", "scenarios", "ramdisk")


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
         "-p", "metalcubed.controllers", "-p", "metalcubed.simulators", "-p", "metalcubed.cli",
         "-p", "metalcubed.ramdisk"],
        package_tree,
        package_tree,
    )


def test_import_contracts_hold(package_tree: pathlib.Path) -> None:
    assert shutil.which("lint-imports"), "import-linter is missing: pip install -e '.[dev]'"
    out = _run(
        ["lint-imports", "--config", str(ROOT / "pyproject.toml")], package_tree, package_tree
    )
    assert "broken" not in out.split("Contracts:")[-1] or " 0 broken" in out


# --- docs name only files the repository holds -----------------------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_TOP = ("benchmarks", "cli", "controllers", "core", "docs", "ramdisk", "scenarios", "simulators",
        "tests",
        r"\.ci", "shared")  # shared/: the reference notes outside the repo, never to be cited
_REPO_PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(_TOP)})/[\w./*-]*)")
_API_GROUP_VERSION = re.compile(r"[a-z0-9.]+/v\d+((alpha|beta)\d+)?")
_MODULE_FILE = re.compile(r"`([\w-]+\.py)`|(?<![\w./-])([\w-]+\.md)\b")
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def _names_a_file(path: str) -> bool:
    """A path, a glob, a module (`simulators/hostmodel`) or a module's name
    (`simulators/hostmodel.HostModel`) that the checkout holds."""
    path = path.rstrip(".,:;")
    if any(ch in path for ch in "*?["):
        return any(ROOT.glob(path))
    base = path.rstrip("/")
    candidates = [base, f"{base}.py"]
    if "." in base.rsplit("/", 1)[-1]:
        candidates.append(f"{base.rsplit('.', 1)[0]}.py")
    return any((ROOT / c).exists() for c in candidates)


def _doc_paths(doc: pathlib.Path) -> list[tuple[str, str]]:
    """(path as written, path from the repository root) for every repo file `doc` names:
    paths from a top-level folder anywhere in the text (prose, code, commands), relative
    links, bare module names in backticks (`store.py`) and bare Markdown names (`bmo.md`),
    which must be somewhere in the tree."""
    text = doc.read_text(encoding="utf-8")
    found = [(m, m) for m in _REPO_PATH.findall(text) if not _API_GROUP_VERSION.fullmatch(m)]
    for name in (py or md for py, md in _MODULE_FILE.findall(text)):
        hits = [p for p in ROOT.rglob(name) if ".git" not in p.parts]
        found.append((name, str(hits[0].relative_to(ROOT)) if hits else name))
    for target in _LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        resolved = (doc.parent / target).resolve()
        shown = str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else target
        found.append((target, shown))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_name_only_files_the_repository_holds(doc: pathlib.Path) -> None:
    missing = sorted({shown for shown, path in _doc_paths(doc) if not _names_a_file(path)})
    assert not missing, f"{doc.relative_to(ROOT)} names files the repository does not hold: " \
        f"{missing}"


def test_the_docs_check_sees_paths() -> None:
    """The check above is not vacuous: it finds the paths README.md names."""
    paths = [path for _, path in _doc_paths(ROOT / "README.md")]
    assert len(paths) >= 5
    assert all(_names_a_file(p) for p in ("core/queue.py", "simulators/hostmodel.HostModel",
                                           "benchmarks/results/*.json", "tests/kube/"))
    assert not _names_a_file("core/no_such_module.py")


# --- no test sleeps then asserts, or asserts a wall-clock bound --------------------------------

_CLOCK_CALLS = frozenset({"monotonic", "monotonic_ns", "perf_counter", "time"})

KNOWN_TIMING_TESTS: dict[str, str] = {
    # "path::function": who owns the fix. Tests that still break the rule, to be rewritten
    # (manual clock, a barrier event, or a bounded poll for a positive condition). Delete an
    # entry when its test is fixed; never add one. (Empty: all fixed.)
}


def _is_clock_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "time"
        and node.func.attr in _CLOCK_CALLS
    )


def _is_sleep(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and (
        (isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr == "sleep")
        or (isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "sleep")
    )


def _timing_problems(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Asserts that bound a wall-clock duration (`time.monotonic() - began < 3`, or a name
    holding one), outside a polling loop; and asserts within two statements after a sleep."""
    stamps: set[str] = set()  # names holding a clock reading, or a list of them
    durations: set[str] = set()

    def is_stamp(e: ast.expr) -> bool:
        if _is_clock_call(e):
            return True
        if isinstance(e, ast.Name):
            return e.id in stamps
        if isinstance(e, ast.Subscript):
            return is_stamp(e.value)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in ("min", "max"):
            return any(is_stamp(arg) for arg in e.args)
        return False

    def is_duration(e: ast.expr) -> bool:
        if isinstance(e, ast.Name):
            return e.id in durations
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "round":
            return any(is_duration(arg) for arg in e.args)
        return isinstance(e, ast.BinOp) and isinstance(e.op, ast.Sub) and is_stamp(e.left)

    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "append" and isinstance(node.func.value, ast.Name) \
                and any(_is_clock_call(arg) for arg in node.args):
            stamps.add(node.func.value.id)
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            if is_stamp(node.value):
                stamps.add(node.targets[0].id)
            elif is_duration(node.value):
                durations.add(node.targets[0].id)

    in_loop: set[int] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.While | ast.For):
            in_loop.update(id(inner) for inner in ast.walk(node))
    problems: list[str] = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert) and id(node) not in in_loop:
            for cmp in ast.walk(node.test):
                if isinstance(cmp, ast.Compare) and any(
                    isinstance(op, ast.Lt | ast.LtE | ast.Gt | ast.GtE) for op in cmp.ops
                ) and any(is_duration(x) for x in (cmp.left, *cmp.comparators)):
                    problems.append(f"line {node.lineno}: asserts a wall-clock bound")
                    break
        for block in (getattr(node, name, None) for name in ("body", "orelse", "finalbody")):
            if not isinstance(block, list):
                continue
            for index, stmt in enumerate(block):
                if _is_sleep(stmt):
                    for later in block[index + 1 : index + 3]:
                        if isinstance(later, ast.Assert):
                            problems.append(f"line {later.lineno}: asserts right after a sleep")
                            break
    return problems


def _timing_offenders() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                    and (problems := _timing_problems(node)):
                found[f"{path.relative_to(ROOT)}::{node.name}"] = problems
    return found


def test_no_test_sleeps_then_asserts_or_bounds_wall_clock_time() -> None:
    """Drive time with the manual clock, or poll for a positive condition with a deadline that
    fails with a message (an assert inside the polling loop is fine)."""
    offenders = _timing_offenders()
    new = {name: why for name, why in offenders.items() if name not in KNOWN_TIMING_TESTS}
    assert not new, f"tests that sleep then assert, or assert wall-clock bounds: {new}"


def test_the_timing_check_catches_both_patterns() -> None:
    source = """
def test_sleepy():
    began = time.monotonic()
    time.sleep(0.5)
    assert calls == []
    took = time.monotonic() - began
    assert took < 3

def test_polls():
    deadline = time.monotonic() + 5
    while not done():
        assert time.monotonic() - began < 5, "not done in time"
        time.sleep(0.02)
"""
    sleepy, polls = (n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    assert [p.split(": ")[1] for p in _timing_problems(sleepy)] == [
        "asserts right after a sleep", "asserts a wall-clock bound"]
    assert _timing_problems(polls) == []
