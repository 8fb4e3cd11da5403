"""Debian packages as file trees: `apt-get download` + `dpkg-deb -x`, cached on disk.

The ramdisk and the tiny OS image are assembled from Debian's own binaries (kernel, busybox,
Python, isolinux), so nothing is installed on the build host and the result is what Debian
ships. Downloads and extracted trees live in the cache (default ~/.cache/metalcubed/ramdisk):
a second build downloads nothing. Failures are `BuildError`s naming the package and the
command to run.
"""

import os
import shutil
import subprocess
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / \
    "metalcubed" / "ramdisk"

KERNEL_META = "linux-image-amd64"
"""Debian's kernel metapackage; its Depends names the versioned kernel package."""


class BuildError(Exception):
    """A ramdisk or image build step failed; the message says what and how to fix it."""


def _run(argv: list[str], *, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=600)
    except FileNotFoundError as err:
        raise BuildError(f"{argv[0]} is not installed: the builder needs Debian's apt-get "
                         f"and dpkg-deb") from err
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BuildError(f"`{' '.join(argv)}` failed: {tail}")
    return done.stdout


def download(package: str, cache: Path, version: str = "") -> Path:
    """The .deb of `package` (`version`, else apt's candidate), fetched once into the cache."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    version = version or candidates([package])[package]
    name = f"{package}_{version.replace(':', '_')}_"
    for existing in debs.glob(f"{package}_*.deb"):
        if existing.name.startswith(name):
            return existing
    scratch = debs / f".get-{package}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=scratch)
        got = list(scratch.glob("*.deb"))
        if len(got) != 1:
            raise BuildError(f"apt-get download {package} gave {len(got)} files")
        target = debs / got[0].name.replace("%3a", "_")
        got[0].replace(target)  # atomic: a concurrent download of the same file is the same
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def candidates(packages: list[str]) -> dict[str, str]:
    """The versions apt would install (one apt-cache call); BuildError naming a package apt
    does not know."""
    out = _run(["apt-cache", "policy", *packages])
    found: dict[str, str] = {}
    current = ""
    for line in out.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            current = line.rstrip()[:-1].split(":")[0]
            continue
        key, _, value = line.strip().partition(":")
        if key == "Candidate" and current and value.strip() not in ("", "(none)"):
            found[current] = value.strip()
    missing = [p for p in packages if p not in found]
    if missing:
        raise BuildError(f"apt knows no package {', '.join(missing)}: run `apt-get update` "
                         f"(Debian 12 bookworm sources) and retry")
    return found


def depends(deb: Path) -> list[str]:
    """The package names in a .deb's Depends field (first alternative, no versions)."""
    text = _run(["dpkg-deb", "-f", str(deb), "Depends"]).strip()
    names = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        names.append(item.split("|")[0].split("(")[0].split(":")[0].strip())
    return names


def kernel_package(cache: Path, version: str = "") -> str:
    """The versioned kernel package the metapackage points at (linux-image-6.1.0-NN-amd64)."""
    meta = download(KERNEL_META, cache, version)
    for name in depends(meta):
        if name.startswith("linux-image-") and name != KERNEL_META:
            return name
    raise BuildError(f"{KERNEL_META} depends on no linux-image package")


def extract(package: str, cache: Path, version: str = "") -> Path:
    """The file tree of `package`, extracted once (dpkg-deb -x) next to its .deb."""
    deb = download(package, cache, version)
    tree = cache / "trees" / deb.stem
    if (tree / ".done").exists():
        return tree
    scratch = tree.with_name(f".tmp-{deb.stem}-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        _run(["dpkg-deb", "-x", str(deb), str(scratch)])
        (scratch / ".done").write_text(deb.name)
        if not (tree / ".done").exists():
            shutil.rmtree(tree, ignore_errors=True)
            scratch.replace(tree)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return tree
