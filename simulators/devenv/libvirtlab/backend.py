"""The libvirt lab's machines: what `devenv up --backend libvirt` adds to the lab process.

`VmLab.prepare()` (before the manager starts, whose agent API must listen on the network's
address) checks the dependencies, fixes /dev/kvm, starts libvirt's daemons when they are not
running, creates the isolated network and the storage pool, builds (cached) the deploy
ramdisk, its EFI bootloader and the tiny OS image (metalcubed.ramdisk), and serves them on the
network's address. `start_hosts()` then defines one TCG domain per host and starts its BMC:
sushy-tools (Redfish, one endpoint for all) and virtualbmc (IPMI, a UDP port per domain), on
127.0.0.1. Each thing is written into the ledger before it is created, and `stop()` (or
`devenv down`, even after the lab process died) undoes them all from the ledger.

Virtual-media hosts boot UEFI (OVMF, `bootMode: UEFI`, Metal3's default) from the prebuilt deploy
ISO (the manager's DEPLOY_ISO_URL; the agent gets its token from its lookup); network-booted
hosts (IPMI, and Redfish without virtual media in `--bmc mixed`) boot legacy BIOS (SeaBIOS,
`bootMode: legacy`) through iPXE, which DHCP points at the lab's iPXE script. The images
(metalcubed.ramdisk) boot either way.
"""

import hashlib
import importlib
import logging
import os
import subprocess
import uuid as uuid_module
from pathlib import Path
from typing import IO, Any

from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import shard
from metalcubed.simulators.devenv.libvirtlab import bmcs, daemons, deps, domainxml, files, ledger

log = logging.getLogger(__name__)

DISK_MIB = 2048
MEMORY_MIB = 512
"""UEFI (OVMF) needs 512 MiB (GRUB/loaders run out of memory at 256), and the deploy ramdisk
holds a Python runtime in memory."""
MEMORY_PER_VM_MIB = 700
"""What one VM costs the host (QEMU's RSS is ~300 MiB at 256 MiB guest memory, measured)."""


class VmLabError(RuntimeError):
    """The libvirt lab cannot start; the message says what and what to do."""


def mac_for(lab_id: str, index: int) -> str:
    digest = hashlib.sha256(lab_id.encode()).digest()
    return f"52:54:00:{digest[0]:02x}:{digest[1]:02x}:{index:02x}"


def uefi_for(scheme: str) -> bool:
    """Virtual media boots UEFI (OVMF); network boots use SeaBIOS, whose iPXE takes the HTTP
    boot file DHCP hands out."""
    return scheme == "redfish-virtualmedia"


def _mem_available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def _used_prefixes(conn: Any) -> set[str]:
    used = set()
    for net in conn.listAllNetworks():
        text = net.XMLDesc()
        for part in text.split("address='")[1:]:
            used.add(part.split("'")[0].rsplit(".", 1)[0])
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True,
                         check=False).stdout
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            used.add(fields[fields.index("inet") + 1].split("/")[0].rsplit(".", 1)[0])
    return used


def qemu_usage(domain: str) -> dict[str, Any]:
    """The domain's QEMU process: its pid, CPU seconds so far and resident memory (MiB), from
    libvirt's pid file and /proc; empty when it is not running."""
    try:
        pid = int(Path(f"/run/libvirt/qemu/{domain}.pid").read_text().strip())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError):
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    rss_kib = next((int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("VmRSS:")), 0)
    return {"qemuPid": pid, "cpuSeconds": round((int(fields[11]) + int(fields[12])) / ticks, 1),
            "rssMiB": rss_kib // 1024}


class VmLab:
    def __init__(self, config: lab_config.LabConfig, directory: Path, lab_id: str, *,
                 log_file: IO[str] | None = None) -> None:
        self.config = config
        self.directory = directory
        self.lab_id = lab_id
        self._log = log_file
        self.ledger = ledger.Ledger(lab_id=lab_id)
        self.conn: Any = None
        self.net: domainxml.Net | None = None
        self.files: files.LabFiles | None = None
        self.vms: list[domainxml.Vm] = []
        self.schemes = config.schemes()
        self.sushy: bmcs.Sushy | None = None
        self.vbmc: bmcs.Vbmc | None = None
        self.artifacts: Any = None
        self.image_url = ""
        self.image_checksum = ""
        self.deploy_iso_url = ""
        self.agent_port = 0
        self._files_port = 0
        self.report_url = ""
        self.hosts: list[shard.HostInfo] = []
        self.kvm = daemons.hardware_kvm()
        """Hardware KVM for the domains; TCG otherwise (as on the machines measured here)."""

    def _save(self) -> None:
        self.ledger.save(self.directory)

    @property
    def gateway(self) -> str:
        assert self.net is not None
        return self.net.gateway

    # --- before the manager ------------------------------------------------------------------

    def prepare(self) -> None:
        try:
            deps.check()
        except deps.DepsError as err:
            raise VmLabError(str(err)) from err
        need = MEMORY_PER_VM_MIB * self.config.hosts
        if _mem_available_mib() < need:
            raise VmLabError(f"--hosts: {self.config.hosts} VMs need about {need} MiB of free "
                             f"memory, this machine has {_mem_available_mib()} MiB available")
        self._save()
        self.ledger.kvm_mode = daemons.fix_kvm()
        self._save()
        try:
            self.ledger.started_daemons = daemons.start(self.directory)
        except daemons.HostSetupError as err:
            raise VmLabError(str(err)) from err
        self._save()
        self.ledger.chains_before = daemons.existing_chains()
        self._save()
        import libvirt

        self.conn = libvirt.open(ledger.URI)
        self._create_network()
        self._create_pool()
        self._build_images()
        self.files = files.LabFiles(self.gateway, self._files_port, self.images_dir)
        self.files.start()

    @property
    def images_dir(self) -> Path:
        return self.directory / "images"

    def _create_network(self) -> None:
        used = _used_prefixes(self.conn)
        prefix = next((f"172.22.{n}" for n in range(256) if f"172.22.{n}" not in used), None)
        if prefix is None:
            raise VmLabError("no free 172.22.N.0/24 network for the lab")
        self._files_port = bmcs.free_port()
        self.agent_port = bmcs.free_port()
        files_url = f"http://{prefix}.1:{self._files_port}"
        name = f"mc3-{self.lab_id}"
        reservations = tuple((mac_for(self.lab_id, i), f"{prefix}.{10 + i}",
                              self.config.host_name(i)) for i in range(self.config.hosts))
        self.net = domainxml.Net(name=name, bridge=f"mc3br{self.lab_id[:8]}", prefix=prefix,
                                 boot_url=f"{files_url}/files/boot.ipxe", hosts=reservations)
        self.ledger.network = name
        self._save()
        net = self.conn.networkDefineXML(domainxml.network(self.net))
        net.create()
        log.info("network %s: %s.0/24 on bridge %s (isolated, DNS off)", name, prefix,
                 self.net.bridge)

    def _create_pool(self) -> None:
        vm_dir = ledger.VM_ROOT / self.lab_id
        self.ledger.vm_dir = str(vm_dir)
        self.ledger.pool = f"mc3-{self.lab_id}"
        self._save()
        (vm_dir / "pool").mkdir(parents=True, exist_ok=True)
        ledger.VM_ROOT.chmod(0o755)
        vm_dir.chmod(0o755)
        pool = self.conn.storagePoolDefineXML(
            domainxml.pool(self.ledger.pool, str(vm_dir / "pool")))
        pool.create()

    def _build_images(self) -> None:
        """The deploy ramdisk (kernel, initrd, ISO, iPXE script) and the OS image, with this
        lab's URLs baked in (metalcubed.ramdisk; its Debian packages are cached)."""
        try:  # H6's builder (metalcubed.ramdisk), imported by name: it is optional here
            build: Any = importlib.import_module("metalcubed.ramdisk.build")
        except ImportError as err:
            raise VmLabError(f"the deploy ramdisk builder (metalcubed.ramdisk) is missing: "
                             f"{err}") from err
        files_url = f"http://{self.gateway}:{self._files_port}"
        self.images_dir.mkdir(exist_ok=True)
        try:
            art = build.build_all(self.images_dir, api_url=self.agent_url,
                                  boot_url=f"{files_url}/files",
                                  report_url=f"{files_url}/booted")
        except Exception as err:  # the builder names what failed; the lab reports it
            raise VmLabError(f"could not build the deploy ramdisk and OS image: {err}") from err
        self.artifacts = art
        self.deploy_iso_url = f"{files_url}/files/{Path(art.iso).name}"
        self.image_url = f"{files_url}/files/{Path(art.os_image).name}"
        self.image_checksum = str(art.os_sha256)
        self.report_url = f"{files_url}/booted"

    @property
    def agent_url(self) -> str:
        return f"http://{self.gateway}:{self.agent_port}"

    @property
    def agent_bind(self) -> str:
        """Where the manager's agent API listens: the network's own address."""
        return f"{self.gateway}:{self.agent_port}"

    # --- after the manager -------------------------------------------------------------------

    def start_hosts(self) -> list[shard.HostInfo]:
        assert self.net is not None
        vm_dir = Path(self.ledger.vm_dir)
        pool = self.conn.storagePoolLookupByName(self.ledger.pool)
        for i in range(self.config.hosts):
            name = f"mc3-{self.lab_id}-{self.config.host_name(i)}"
            vm = domainxml.Vm(
                name=name, uuid=str(uuid_module.uuid4()), mac=mac_for(self.lab_id, i),
                network=self.net.name, disk=str(vm_dir / "pool" / f"{name}.qcow2"),
                console=str(vm_dir / f"{name}.console.log"),
                uefi=uefi_for(self.schemes[i]),
                nvram=str(vm_dir / f"{name}_VARS.fd"), memory_mib=MEMORY_MIB,
                boot="hd", kvm=self.kvm)
            self.ledger.domains.append(name)
            self._save()
            pool.createXML(domainxml.volume(f"{name}.qcow2", DISK_MIB), 0)
            self.conn.defineXML(domainxml.domain(vm))
            self.vms.append(vm)
        self._start_bmcs()
        return self.hosts

    def _record(self, pid: int, mark: str) -> None:
        self.ledger.processes.append({"pid": pid, "mark": mark})
        self._save()

    def _start_bmcs(self) -> None:
        cfg = self.config
        try:
            if any(s != "ipmi" for s in self.schemes):
                self.sushy = bmcs.Sushy(self.directory, pool=self.ledger.pool,
                                        uuids=[vm.uuid for vm in self.vms],
                                        username=cfg.username, password=cfg.password,
                                        log=self._log)
                self._record(self.sushy.start(), self.sushy.mark)
            if "ipmi" in self.schemes:
                self.vbmc = bmcs.Vbmc(self.directory, username=cfg.username,
                                      password=cfg.password, log=self._log)
                self._record(self.vbmc.start(), self.vbmc.mark)
            for i, (vm, scheme) in enumerate(zip(self.vms, self.schemes, strict=True)):
                if scheme == "ipmi":
                    assert self.vbmc is not None
                    address = self.vbmc.add(vm.name)
                else:
                    assert self.sushy is not None
                    address = self.sushy.address(
                        vm.uuid, virtual_media=scheme == "redfish-virtualmedia")
                self.hosts.append(shard.HostInfo(
                    index=i, name=cfg.host_name(i), scheme=scheme, bmc_address=address,
                    boot_mac=vm.mac, system_uuid=vm.uuid))
        except bmcs.BmcError as err:
            raise VmLabError(str(err)) from err

    # --- looking -----------------------------------------------------------------------------

    def domain_rows(self) -> dict[str, dict[str, Any]]:
        """Per host name: its domain, the domain's state, address, console and OS report."""
        import libvirt

        states = {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
                  libvirt.VIR_DOMAIN_PAUSED: "paused", libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
                  libvirt.VIR_DOMAIN_CRASHED: "crashed"}
        rows = {}
        assert self.net is not None
        for i, vm in enumerate(self.vms):
            try:
                state = states.get(self.conn.lookupByName(vm.name).state()[0], "other")
            except libvirt.libvirtError:
                state = "undefined"
            report = self.files.reports.get(vm.mac) if self.files is not None else None
            rows[self.config.host_name(i)] = {
                "domain": vm.name, "domainState": state, "mac": vm.mac,
                "ip": self.net.hosts[i][1], "firmware": "uefi" if vm.uefi else "bios",
                "console": vm.console, "osReport": report, **qemu_usage(vm.name),
            }
        return rows

    def restart_sushy(self) -> None:
        """Start the Redfish emulator again on its port (after it was stopped or died)."""
        if self.sushy is None:
            raise VmLabError("this lab has no Redfish host")
        self.sushy.stop()
        try:
            self._record(self.sushy.start(), self.sushy.mark)
        except bmcs.BmcError as err:
            raise VmLabError(str(err)) from err

    def describe(self) -> dict[str, Any]:
        return {
            "network": self.ledger.network, "bridge": self.net.bridge if self.net else "",
            "gateway": self.gateway if self.net else "", "pool": self.ledger.pool,
            "vmDir": self.ledger.vm_dir, "files": self.files.url if self.files else "",
            "sushy": self.sushy.endpoint if self.sushy else "",
            "vbmcd": self.vbmc.server_port if self.vbmc else None,
            "startedDaemons": self.ledger.started_daemons,
            "accelerator": "kvm" if self.kvm else "tcg",
        }

    # --- stopping ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the BMCs and the file server, then undo everything in the ledger."""
        for part in (self.sushy, self.vbmc, self.files):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    log.exception("stopping %s", type(part).__name__)
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                log.exception("closing the libvirt connection")
            self.conn = None
        removed = ledger.teardown(self.directory)
        log.info("libvirt lab removed: %s", ", ".join(removed) or "nothing")
