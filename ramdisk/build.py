"""Build the lab's boot artefacts from Debian packages: the deploy ramdisk (kernel + initrd,
an ISO for virtual media, an iPXE script for network boot) and the tiny OS disk image.

- deploy initrd: busybox-static, Debian's python3.11 (binary, the glibc it needs, a pruned
  standard library compiled ahead), the agent (files/agent.py) and the kernel modules a lab VM
  needs; /init brings up the NIC with DHCP and runs the agent;
- tiny OS: busybox and the same modules; /init reads the config drive (meta_data hostname)
  and reports it; shipped as a hybrid ISO, i.e. a raw disk image that boots from disk;
- both boot Debian's kernel (linux-image-amd64) through ISOLINUX (BIOS).

The kernel and initrds are cached by a digest of their inputs (package versions and the
files here); the ISO, iPXE script and disk image carry URLs, so they are written per call.
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from metalcubed.ramdisk import cpio, debs, esp, isoimage, kmod

FILES = Path(__file__).parent / "files"
PACKAGES = ("busybox-static", "python3.11-minimal", "libpython3.11-minimal",
            "libpython3.11-stdlib", "libc6", "zlib1g", "libexpat1", "isolinux",
            "syslinux-common", "systemd-boot-efi", "mtools")
"""Besides the kernel: what goes into the initrds and ISOs."""
LIBS = ("ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libz.so.1", "libexpat.so.1")
"""What Debian's python3.11 binary links against."""
STDLIB_SKIP = frozenset({
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
    "distutils", "unittest", "sqlite3", "curses", "dbm", "asyncio", "multiprocessing", "xml",
    "xmlrpc", "venv", "ctypes", "site-packages", "dist-packages", "lib-dynload",
    "__phello__", "config-3.11-x86_64-linux-gnu", "pydoc.py", "turtle.py"})
DYNLOAD = ("_json", "_queue")
"""Extension modules worth their size (no extra libraries needed)."""
CONSOLE = "console=tty0 console=ttyS0,115200"
DEPLOY_LABEL = "METALCUBED-DEPLOY"
OS_LABEL = "METALCUBED-OS"


@dataclass(frozen=True, slots=True)
class Artefacts:
    kernel: Path
    initrd: Path
    iso: Path
    ipxe: Path
    os_image: Path
    os_sha256: str
    kernel_version: str

    def as_json(self) -> str:
        return json.dumps({k: str(v) for k, v in asdict(self).items()}, indent=2)


@dataclass(frozen=True, slots=True)
class _Trees:
    kernel_pkg: str
    kernel_tree: Path
    trees: dict[str, Path]

    @property
    def modules_dir(self) -> Path:
        return next((self.kernel_tree / "lib" / "modules").iterdir())

    def find(self, relative: str) -> Path:
        """A file from any package tree (`relative` without the leading slash)."""
        for tree in self.trees.values():
            candidate = tree / relative
            if candidate.exists():
                return candidate
        raise debs.BuildError(f"no package provides /{relative}")

    def find_lib(self, name: str) -> Path:
        for tree in self.trees.values():
            for folder in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64"):
                candidate = tree / folder / name
                if candidate.exists():
                    return candidate.resolve()
        raise debs.BuildError(f"no package provides the library {name}")


def _trees(cache: Path) -> _Trees:
    versions = debs.candidates([*PACKAGES, debs.KERNEL_META])
    kernel_pkg = debs.kernel_package(cache, versions[debs.KERNEL_META])
    trees = {name: debs.extract(name, cache, versions[name]) for name in PACKAGES}
    return _Trees(kernel_pkg, debs.extract(kernel_pkg, cache), trees)


def _digest(trees: _Trees, *extra: str) -> str:
    h = hashlib.sha256()
    for tree in [trees.kernel_tree, *trees.trees.values()]:
        h.update(tree.name.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")) + sorted(FILES.iterdir()):
        h.update(path.name.encode() + path.read_bytes())
    for text in extra:
        h.update(text.encode())
    return h.hexdigest()[:16]


def _base(trees: _Trees, init: str) -> dict[str, cpio.Entry]:
    """busybox, /init, the DHCP script, /dev/console and the kernel modules."""
    entries: dict[str, cpio.Entry] = {d: cpio.directory() for d in (
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run", "tmp",
        "mnt", "root", "lib", "lib/modules")}
    entries["bin/busybox"] = cpio.file(trees.find("bin/busybox"), 0o755)
    entries["bin/sh"] = cpio.symlink("busybox")
    entries["init"] = cpio.file(FILES / init, 0o755)
    entries["etc/common.sh"] = cpio.file(FILES / "common.sh")
    entries["etc/udhcpc.script"] = cpio.file(FILES / "udhcpc.script", 0o755)
    entries["dev/console"] = cpio.char_device(5, 1)
    order = kmod.load_order(trees.modules_dir)
    for ko in order:
        entries[f"lib/modules/{ko.stem}.ko"] = cpio.file(ko)
    entries["lib/modules/load.order"] = cpio.file("\n".join(ko.stem for ko in order).encode()
                                                  + b"\n")
    return entries


def _python(trees: _Trees, work: Path) -> dict[str, cpio.Entry]:
    """Debian's python3.11 with a pruned, precompiled standard library (sources dropped)."""
    entries: dict[str, cpio.Entry] = {
        "lib64": cpio.directory(), "lib/x86_64-linux-gnu": cpio.directory(),
        "usr/lib": cpio.directory(), "usr/share": cpio.directory(),
        "usr/share/metalcubed": cpio.directory()}
    binary = trees.find("usr/bin/python3.11")
    entries["usr/bin/python3.11"] = cpio.file(binary, 0o755)
    entries["usr/bin/python3"] = cpio.symlink("python3.11")
    for lib in LIBS:
        entries[f"lib/x86_64-linux-gnu/{lib}"] = cpio.file(trees.find_lib(lib), 0o755)
    entries["lib64/ld-linux-x86-64.so.2"] = cpio.symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    stdlib = work / "lib" / "python3.11"
    shutil.rmtree(stdlib, ignore_errors=True)
    stdlib.mkdir(parents=True)
    for tree in (trees.trees["libpython3.11-minimal"], trees.trees["libpython3.11-stdlib"]):
        source = tree / "usr/lib/python3.11"
        for item in source.iterdir():
            if item.name in STDLIB_SKIP or not item.exists():  # dangling: another package's
                continue
            if item.is_dir():
                shutil.copytree(item, stdlib / item.name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("test", "tests", "__pycache__"))
            else:
                shutil.copy2(item, stdlib / item.name)
    dynload = stdlib / "lib-dynload"
    dynload.mkdir()
    for name in DYNLOAD:
        for so in (trees.trees["libpython3.11-stdlib"] / "usr/lib/python3.11/lib-dynload").glob(
                f"{name}.cpython-311-*.so"):
            shutil.copy2(so, dynload / so.name)
    _compile(trees, binary, stdlib)
    for path in sorted(stdlib.rglob("*")):
        if path.suffix == ".py":
            continue
        name = "usr/lib/python3.11/" + str(path.relative_to(stdlib))
        entries[name] = cpio.directory() if path.is_dir() else cpio.file(
            path, 0o755 if path.suffix == ".so" else 0o644)
    entries["usr/lib/python3.11"] = cpio.directory()
    entries["usr/share/metalcubed/agent.py"] = cpio.file(FILES / "agent.py")
    return entries


def _compile(trees: _Trees, binary: Path, stdlib: Path) -> None:
    """Compile the stdlib with the ramdisk's own python (run on the host through its own
    loader and libraries), pyc files beside the sources (-b), then the sources go."""
    loader = trees.find_lib("ld-linux-x86-64.so.2")
    libpath = ":".join(sorted({str(trees.find_lib(lib).parent) for lib in LIBS}))
    argv = [str(loader), "--library-path", libpath, str(binary), "-s", "-m",
            "compileall", "-q", "-b", "--invalidation-mode", "unchecked-hash", str(stdlib)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={"PYTHONHOME": str(stdlib.parent.parent)})
    if done.returncode != 0:
        raise debs.BuildError(f"compiling the ramdisk's python stdlib failed: "
                              f"{(done.stderr or done.stdout).strip()[-500:]}")


def _initrds(cache: Path, trees: _Trees) -> tuple[Path, Path, Path]:
    """(kernel, deploy initrd, tiny OS initrd), built once per input digest (into a scratch
    folder renamed into place, so concurrent builders never see half a build); builds of
    other inputs are removed."""
    builds = cache / "build"
    out = builds / _digest(trees)
    kernel, deploy, tiny = out / "vmlinuz", out / "initrd.gz", out / "os-initrd.gz"
    if not (out / ".done").exists():
        scratch = builds / f".tmp-{out.name}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            version = trees.modules_dir.name
            shutil.copyfile(trees.kernel_tree / "boot" / f"vmlinuz-{version}",
                            scratch / kernel.name)
            entries = _base(trees, "deploy-init.sh")
            entries.update(_python(trees, scratch / "work"))
            cpio.write(entries, scratch / deploy.name)
            cpio.write(_base(trees, "os-init.sh"), scratch / tiny.name, level=9)
            shutil.rmtree(scratch / "work")
            (scratch / ".done").write_text(version)
            if not (out / ".done").exists():
                shutil.rmtree(out, ignore_errors=True)
                scratch.replace(out)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    for other in builds.iterdir():
        if other != out and not other.name.startswith(".tmp-"):
            shutil.rmtree(other, ignore_errors=True)
    return kernel, deploy, tiny


def deploy_params(api_url: str, extra: str = "") -> str:
    """The deploy kernel's command line: the console and the agent's parameters."""
    words = [CONSOLE]
    if api_url:
        words.append(f"ipa-api-url={api_url}")
    if extra:
        words.append(extra)
    return " ".join(words)


def ipxe_script(boot_url: str, params: str) -> str:
    """iPXE: fetch kernel and initrd from `boot_url` (else beside the script), pass the MAC
    of the booting NIC as BOOTIF (the agent reports it as the PXE interface)."""
    base = boot_url.rstrip("/") + "/" if boot_url else ""
    return ("#!ipxe\n"
            f"kernel {base}vmlinuz {params} BOOTIF=01-${{net0/mac:hexhyp}} initrd=initrd.gz\n"
            f"initrd {base}initrd.gz\n"
            "boot\n")


def _check_url(name: str, value: str, *, required: bool) -> None:
    if not value and not required:
        return
    if not value.startswith(("http://", "https://")) or " " in value:
        raise debs.BuildError(f"{name} must be an http(s) URL without spaces, not {value!r}")


def build_all(out_dir: Path, *, api_url: str = "", boot_url: str = "", report_url: str = "",
              extra_params: str = "", cache: Path = debs.DEFAULT_CACHE) -> Artefacts:
    """Everything the lab boots, in `out_dir` (see the module docstring and
    docs/ramdisk.md). `api_url` is the agent API (ipa-api-url; "" lets the agent use
    http://<DHCP server>:6385), `boot_url` where `out_dir` is served (iPXE), `report_url`
    where the tiny OS reports its hostname ("{server}" stands for the DHCP server)."""
    _check_url("--api-url", api_url, required=False)
    _check_url("--boot-url", boot_url, required=False)
    _check_url("--report-url", report_url.replace("{server}", "server"), required=False)
    trees = _trees(cache)
    kernel, deploy, tiny = _initrds(cache, trees)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kernel, out_dir / "vmlinuz")
    shutil.copyfile(deploy, out_dir / "initrd.gz")
    loaders = {"isolinux_bin": trees.find("usr/lib/ISOLINUX/isolinux.bin"),
               "ldlinux": trees.find("usr/lib/syslinux/modules/bios/ldlinux.c32"),
               "isohdpfx": trees.find("usr/lib/ISOLINUX/isohdpfx.bin")}
    mtools = trees.find("usr/bin/mtools")
    stub = trees.find("usr/lib/systemd/boot/efi/systemd-bootx64.efi")
    params = deploy_params(api_url, extra_params)
    # From a CD the agent also reads an ir-vfd-dev parameters image, as IPA does.
    iso_params = params + " boot_method=vmedia"
    iso, os_image = out_dir / "deploy.iso", out_dir / "os.img"
    os_params = CONSOLE + (f" mc.report={report_url}" if report_url else "")
    scratch = out_dir / ".esp.img"
    try:
        for target, initrd, line, label, hybrid in (
                (iso, deploy, iso_params, DEPLOY_LABEL, False),
                (os_image, tiny, os_params, OS_LABEL, True)):
            esp.build(scratch, mtools=mtools, loader=stub, kernel=kernel, initrd=initrd,
                      params=line)
            isoimage.build(target, kernel=kernel, initrd=initrd, params=line, label=label,
                           hybrid=hybrid, esp=scratch, **loaders)
    finally:
        scratch.unlink(missing_ok=True)
    ipxe = out_dir / "boot.ipxe"
    ipxe.write_text(ipxe_script(boot_url, params))
    digest = hashlib.sha256(os_image.read_bytes()).hexdigest()
    (out_dir / "os.img.sha256sum").write_text(f"{digest}  os.img\n")
    for path in (iso, os_image):
        path.chmod(path.stat().st_mode | stat.S_IROTH)
    return Artefacts(kernel=out_dir / "vmlinuz", initrd=out_dir / "initrd.gz", iso=iso,
                     ipxe=ipxe, os_image=os_image, os_sha256=digest,
                     kernel_version=trees.modules_dir.name)
