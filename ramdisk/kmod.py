"""Kernel modules for the ramdisk: which .ko files, in which order to insmod them.

Debian's kernel has most drivers as modules and its package ships no modules.dep (depmod
makes it at install), so the order comes from each module's own `.modinfo` `depends=` list.
busybox insmod then loads them one by one; built-in drivers (modules.builtin) are skipped.
"""

from pathlib import Path

from metalcubed.ramdisk import debs

DRIVERS = ("virtio_net", "virtio_pci", "virtio_blk", "virtio_scsi", "e1000", "e1000e",
           "ahci", "ata_piix", "sd_mod", "sr_mod", "isofs")
"""What a lab VM needs: virtio or Intel NICs, SATA/IDE/virtio disks and CDs, ISO 9660."""


def _depends(ko: Path) -> list[str]:
    data = ko.read_bytes()
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    text = data[at + 9:data.index(b"\0", at + 1)].decode()
    return [name for name in text.split(",") if name]


def load_order(modules_dir: Path, wanted: tuple[str, ...] = DRIVERS) -> list[Path]:
    """The .ko files for `wanted` and their dependencies, dependencies first."""
    builtin = {Path(line).stem for line in
               (modules_dir / "modules.builtin").read_text().split()}
    by_name: dict[str, Path] = {}
    for ko in (modules_dir / "kernel").rglob("*.ko"):
        by_name[ko.stem.replace("-", "_")] = ko
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in seen or key in {b.replace("-", "_") for b in builtin}:
            return
        seen.add(key)
        ko = by_name.get(key)
        if ko is None:
            raise debs.BuildError(f"kernel module {name} is neither built in nor in "
                                  f"{modules_dir}")
        for dep in _depends(ko):
            visit(dep)
        order.append(ko)

    for name in wanted:
        visit(name)
    return order
