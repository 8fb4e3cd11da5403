"""The libvirt lab with real virtual machines (TCG): two domains, one behind sushy-tools
(Redfish virtual media) and one behind virtualbmc (IPMI, iPXE network boot), driven by the
manager's composition with the provisioning engine, booting the real deploy ramdisk
(metalcubed.ramdisk) and the tiny OS it writes.

- enroll -> inspect: each host's HardwareData is what its domain is (1 CPU, 512 MiB, the 2 GiB
  SATA disk, the NIC's MAC from the domain XML), reported by the agent inside the VM;
- provision: the VM boots the written image from its disk and reports, over the isolated
  network, the hostname its config drive gave it; the Redfish emulator is stopped while its
  host provisions: the host shows the error, and recovers once the emulator is back;
- deprovision: the agent's metadata cleaning is visible on the disk (the partition tables the
  image brought are gone);
- delete; then stop: no domain, network, pool, volume, process, bridge or iptables chain left,
  and libvirt's daemons only if they ran before;
- a lab killed (-9) half way through `devenv up` is cleaned up by `devenv down` all the same.

Needs root and `make devenv-deps` (CI's `make test` runs it first); fails, naming the command,
when something is missing.
"""

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.simulators.devenv import config, lab
from metalcubed.simulators.devenv.libvirtlab import daemons, deps, ledger

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]
S = bmh.ProvisioningState
PHASE_S = 900.0
"""Per phase: TCG boots on a shared 2-core machine take 10-60 s each; generous on purpose."""


def _require() -> None:
    if os.geteuid() != 0:
        pytest.fail("the libvirt lab needs root (libvirt's system daemon, /dev/kvm, bridges)")
    missing = deps.missing_packages() + deps.missing_python()
    if missing:
        pytest.fail(f"missing for the libvirt lab: {' '.join(missing)}; install with: make "
                    "devenv-deps")
    if importlib.util.find_spec("metalcubed.ramdisk.build") is None:
        pytest.fail("metalcubed.ramdisk (the deploy ramdisk builder) is not installed: "
                    "pip install -e .")


def _host_state() -> tuple[list[str], bool]:
    return daemons.existing_chains(), daemons.libvirtd_answers()


def leftovers(lab_id: str, directory: Path, before: tuple[list[str], bool]) -> list[str]:
    """Everything of this lab still on the machine (empty: nothing)."""
    import libvirt

    found = []
    prefix = f"mc3-{lab_id}"
    if daemons.libvirtd_answers():
        conn = libvirt.open(ledger.URI)
        try:
            found += [f"domain {d.name()}" for d in conn.listAllDomains()
                      if d.name().startswith(prefix)]
            found += [f"network {n.name()}" for n in conn.listAllNetworks()
                      if n.name().startswith(prefix)]
            found += [f"pool {p.name()}" for p in conn.listAllStoragePools()
                      if p.name().startswith(prefix)]
        finally:
            conn.close()
    if Path(f"/sys/class/net/mc3br{lab_id[:8]}").exists():
        found.append("bridge")
    if (ledger.VM_ROOT / lab_id).exists():
        found.append(f"folder {ledger.VM_ROOT / lab_id}")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            if (str(directory).encode() in seen or prefix.encode() in seen) \
                    and b" Z " not in (proc / "stat").read_bytes():
                found.append(f"process {proc.name}: {(proc / 'cmdline').read_bytes()[:80]!r}")
    found += [f"lab file {name}" for name in ledger.LAB_FILES + ledger.LAB_FOLDERS
              if (directory / name).exists()]  # BMC passwords, images
    chains, daemon_ran = before
    found += [f"iptables chain {c}" for c in daemons.existing_chains() if c not in chains]
    if daemons.libvirtd_answers() and not daemon_ran:
        found.append("libvirtd still running (the lab started it)")
    return found


@pytest.fixture
def vmlab(tmp_path: Path) -> Iterator[lab.Lab]:
    _require()
    cfg = config.LabConfig(hosts=2, bmc=config.BmcMix.MIXED, backend="libvirt",
                           hosts_per_process=0, concurrency=4, password="libvirt-lab-pw")
    running = lab.Lab(cfg, directory=tmp_path, lab_id=uuid.uuid4().hex[:8])
    started = time.monotonic()
    running.start()
    _EPOCH[:] = [time.monotonic()]
    TIMELINE.clear()
    _LAST.clear()
    TIMELINE["lab"] = {"up": round(time.monotonic() - started, 1)}
    try:
        yield running
    finally:
        running.stop()


def _rows(running: lab.Lab) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in running.snapshot()["hosts"]}


def _consoles(running: lab.Lab) -> str:
    assert running.vm is not None
    out = []
    for vm in running.vm.vms:
        with contextlib.suppress(OSError):
            tail = Path(vm.console).read_text(errors="replace").splitlines()[-25:]
            out.append(f"--- {vm.name} console:\n" + "\n".join(tail))
    return "\n".join(out)


TIMELINE: dict[str, dict[str, Any]] = {}
"""Per host: when (seconds since the lab was up) each state, and the OS report, was first seen;
the figures in docs/devenv.md come from it."""
_EPOCH: list[float] = []
_LAST: dict[str, str] = {}


def _note(rows: dict[str, dict[str, Any]]) -> None:
    now = round(time.monotonic() - _EPOCH[0], 1)
    for name, row in rows.items():
        seen = TIMELINE.setdefault(name, {})
        state = f"error ({row['state']})" if row["errorType"] else row["state"]
        if _LAST.get(name) != state:
            _LAST[name] = state
            seen[f"{len(seen)}: {state} (t, VM CPU s)"] = [now, row.get("cpuSeconds")]
        if (row.get("osReport") or {}).get("hostname"):
            seen.setdefault("OS reported (t, VM CPU s)", [now, row.get("cpuSeconds")])


def _wait(running: lab.Lab, goal: Callable[[dict[str, dict[str, Any]]], bool], *, what: str,
          timeout_s: float = PHASE_S, poll_s: float = 1.0) -> float:
    started = time.monotonic()
    while True:
        rows = _rows(running)
        _note(rows)
        if goal(rows):
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > timeout_s:
            table = "\n".join(f"{n}: {r['state']} {r['operationalStatus']} {r['errorType']} "
                              f"{r['errorMessage'][:160]} vm={r.get('domainState')}"
                              for n, r in rows.items())
            pytest.fail(f"{what}: not reached in {timeout_s:.0f} s\n{table}\n"
                        + _consoles(running))
        time.sleep(poll_s)


def _disk_head(path: str, size_mib: int = 1) -> bytes:
    """The first MiB of a running domain's qcow2 disk (read shared, not locked)."""
    out = Path(path).with_suffix(".head")
    subprocess.run(["qemu-img", "dd", "-U", "-f", "qcow2", "-O", "raw", "bs=1M",
                    f"count={size_mib}", f"if={path}", f"of={out}"], check=True,
                   capture_output=True, timeout=60)
    try:
        return out.read_bytes()
    finally:
        out.unlink()


def test_two_vms_enroll_inspect_provision_through_a_bmc_outage_deprovision_delete(
        vmlab: lab.Lab, tmp_path: Path) -> None:
    running = vmlab
    assert running.vm is not None and running.store is not None
    vm, store = running.vm, running.store
    hosts = {h.name: h for h in running.hosts}
    assert hosts["host-0"].scheme == "redfish-virtualmedia" and hosts["host-1"].scheme == "ipmi"
    firmware = {name: row["firmware"] for name, row in vm.domain_rows().items()}
    assert firmware == {"host-0": "uefi", "host-1": "bios"}  # OVMF virtual media, SeaBIOS iPXE
    figures: dict[str, Any] = {}

    # Enroll -> inspect -> available: the agent in each VM reports the domain's hardware.
    figures["enroll -> available"] = _wait(
        running, lambda rows: all(r["state"] == "available" for r in rows.values()),
        what="both hosts available")
    for info, domain in zip(running.hosts, vm.vms, strict=True):
        key = running.keys[info.index]
        hardware = store.get(hwd.HardwareData, key).spec.hardware
        assert hardware is not None
        assert hardware.cpu.count == 1
        assert 400 <= hardware.ram_mebibytes <= 512
        assert [n.mac for n in hardware.nics] == [domain.mac]
        disks = [d for d in hardware.storage if d.size_bytes]
        assert [d.size_bytes for d in disks] == [2048 * 1024 * 1024]
        assert store.get(bmh.BareMetalHost, key).spec.boot_mac_address == domain.mac

    # Provision both; stop the Redfish emulator while host-0 provisions, then start it again.
    for key in running.keys:
        assert running.set_image(key, running.image_spec())
    _wait(running, lambda rows: rows["host-0"]["state"] == "provisioning",
          what="host-0 provisioning", timeout_s=120, poll_s=0.1)  # lasts ~9 s
    assert vm.sushy is not None
    vm.sushy.stop()
    outage = time.monotonic()
    figures["BMC down -> host error"] = _wait(
        running, lambda rows: bool(rows["host-0"]["errorMessage"]),
        what="host-0 shows the BMC outage")
    error = _rows(running)["host-0"]
    assert error["errorType"], error
    assert "127.0.0.1" in error["errorMessage"] or "connect" in error["errorMessage"].lower()
    vm.restart_sushy()
    figures["BMC outage"] = round(time.monotonic() - outage, 1)
    figures["BMC back -> provisioned"] = _wait(
        running, lambda rows: all(r["state"] == "provisioned" and not r["errorType"]
                                  for r in rows.values()),
        what="both hosts provisioned, host-0 recovered")
    figures["provisioned -> OS report"] = _wait(
        running, lambda rows: all((r.get("osReport") or {}).get("hostname") == name
                                  for name, r in rows.items()),
        what="each VM booted its disk and reported the hostname from its config drive")
    heads = {d.name: _disk_head(d.disk) for d in vm.vms}
    assert all(head[510:512] == b"\x55\xaa" for head in heads.values())  # the image's MBR
    figures["vm"] = {n: {k: r.get(k) for k in ("cpuSeconds", "rssMiB")}
                     for n, r in _rows(running).items()}

    # Deprovision: the agent's metadata cleaning wipes the image's partition tables.
    for key in running.keys:
        assert running.set_image(key, None)
    figures["deprovision -> available"] = _wait(
        running, lambda rows: all(r["state"] == "available" for r in rows.values()),
        what="both hosts deprovisioned")
    for domain in vm.vms:
        head = _disk_head(domain.disk)
        assert head[:1024] == bytes(1024), f"{domain.name}: MBR/GPT not wiped"

    # Delete.
    for key in running.keys:
        store.delete(bmh.BareMetalHost, key)

    def gone(_rows: dict[str, dict[str, Any]]) -> bool:
        return not running.host_objects()

    figures["delete -> gone"] = _wait(running, gone, what="hosts deleted")
    for key in running.keys:
        with pytest.raises(outcome.NotFound):
            store.get(bmh.BareMetalHost, key)
    print("libvirt lab figures:", json.dumps(figures))
    print("libvirt lab timeline:", json.dumps(TIMELINE))


def test_the_lab_stops_leaving_nothing(tmp_path: Path) -> None:
    """Up with two VMs (one booted, so QEMU, dnsmasq and the chains are really there), stop:
    nothing of the lab remains."""
    _require()
    before = _host_state()
    lab_id = uuid.uuid4().hex[:8]
    cfg = config.LabConfig(hosts=2, bmc=config.BmcMix.MIXED, backend="libvirt",
                           hosts_per_process=0, concurrency=2, password="libvirt-lab-pw")
    running = lab.Lab(cfg, directory=tmp_path, lab_id=lab_id)
    try:
        running.start(enroll=False)
        assert running.vm is not None
        import libvirt

        conn = libvirt.open(ledger.URI)
        try:
            conn.lookupByName(running.vm.vms[0].name).create()
        finally:
            conn.close()
        assert leftovers(lab_id, tmp_path, before)  # the check sees a running lab
    finally:
        running.stop()
    assert leftovers(lab_id, tmp_path, before) == []
    assert not (tmp_path / ledger.FILE).exists()


def _devenv(*args: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metalcubed.cli", "devenv", *args, "--dir",
                           str(directory)], capture_output=True, text=True, timeout=1500)


def test_a_lab_killed_half_way_through_up_is_removed_by_down(tmp_path: Path) -> None:
    """`devenv up --backend libvirt` killed with SIGKILL once its network exists, before its
    domains: `devenv down` removes what the ledger recorded."""
    _require()
    before = _host_state()
    up = subprocess.Popen([sys.executable, "-m", "metalcubed.cli", "devenv", "up", "--backend",
                           "libvirt", "--hosts", "2", "--bmc", "mixed", "--dir", str(tmp_path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        record: ledger.Ledger | None = None
        while time.monotonic() < deadline:
            record = ledger.load(tmp_path)
            if record is not None and record.network and record.pool:
                break
            assert up.poll() is None, up.communicate()[0]
            time.sleep(0.05)
        assert record is not None and record.network, "the lab never created its network"
        pid = int((tmp_path / "lab.pid").read_text())
        up.kill()  # first the client (it would clean up after a lab that died), then the lab
        up.wait(timeout=60)
        os.kill(pid, signal.SIGKILL)
    finally:
        up.kill()
        up.wait(timeout=60)
    down = _devenv("down", directory=tmp_path)
    assert down.returncode == 0, down.stderr
    assert f"network {record.network}" in down.stdout
    assert leftovers(record.lab_id, tmp_path, before) == []
    again = _devenv("down", directory=tmp_path)
    assert again.returncode == 0 and "no lab is running" in again.stdout
