"""The libvirt XML of the lab's network, storage pool, volumes and domains (pure text).

Measured on these machines (docs/devenv.md): domains are `type='qemu'` (TCG) with
`<cpu mode='maximum'/>`, because /dev/kvm here cannot run a kernel (KVM with the host's CPU where
the machine really has it); UEFI (OVMF) needs 512 MiB;
the network is isolated (no `<forward>`: libvirt rejects forwarding, so nothing is NATed out)
with DNS off (dnsmasq forwards no query) and DHCP handing each MAC a fixed address, plus the
iPXE script's URL for network boots.
"""

from dataclasses import dataclass
from xml.sax import saxutils

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


def _q(text: str) -> str:
    return saxutils.quoteattr(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Net:
    name: str
    bridge: str
    """At most 15 characters (a Linux interface name)."""
    prefix: str
    """The /24's first three octets, e.g. "172.22.7"; the host side is .1."""
    boot_url: str
    """What DHCP hands network-booting firmware (iPXE) as its boot file."""
    hosts: tuple[tuple[str, str, str], ...] = ()
    """(mac, ip, name) reservations."""

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.1"


def network(net: Net) -> str:
    reservations = "".join(f"<host mac={_q(mac)} ip={_q(ip)} name={_q(name)}/>"
                           for mac, ip, name in net.hosts)
    return (f"<network><name>{net.name}</name><bridge name={_q(net.bridge)}/>"
            "<dns enable='no'/>"
            f"<ip address={_q(net.gateway)} netmask='255.255.255.0'><dhcp>"
            f"<range start={_q(net.prefix + '.100')} end={_q(net.prefix + '.200')}/>"
            f"{reservations}<bootp file={_q(net.boot_url)}/></dhcp></ip></network>")


def pool(name: str, path: str) -> str:
    return (f"<pool type='dir'><name>{name}</name><target><path>{path}</path>"
            "</target></pool>")


def volume(name: str, size_mib: int) -> str:
    return (f"<volume><name>{name}</name><capacity unit='MiB'>{size_mib}</capacity>"
            "<target><format type='qcow2'/></target></volume>")


@dataclass(frozen=True, slots=True, kw_only=True)
class Vm:
    name: str
    uuid: str
    mac: str
    network: str
    disk: str
    """Path of the root disk (qcow2)."""
    console: str
    """File the serial console (ttyS0) is written to."""
    uefi: bool
    nvram: str = ""
    memory_mib: int = 512
    vcpus: int = 1
    boot: str = "hd"
    """Initial boot device: "hd" or "network" (the BMC changes it later)."""
    kvm: bool = False
    """Hardware KVM (`type='kvm'`, the host's CPU) instead of TCG; only where it really works."""


def domain(vm: Vm) -> str:
    loader = ""
    if vm.uefi:
        loader = (f"<loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>"
                  f"<nvram template={_q(OVMF_VARS)}>{vm.nvram}</nvram>")
    return (
        f"<domain type={_q('kvm' if vm.kvm else 'qemu')}><name>{vm.name}</name>"
        f"<uuid>{vm.uuid}</uuid>"
        f"<memory unit='MiB'>{vm.memory_mib}</memory><vcpu>{vm.vcpus}</vcpu>"
        f"<os><type arch='x86_64' machine='q35'>hvm</type>{loader}"
        f"<boot dev={_q(vm.boot)}/></os>"
        "<features><acpi/><apic/></features>"
        f"<cpu mode={_q('host-passthrough' if vm.kvm else 'maximum')}/>"
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>"
        "<on_crash>destroy</on_crash><devices>"
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file={_q(vm.disk)}/><target dev='sda' bus='sata'/></disk>"
        f"<interface type='network'><mac address={_q(vm.mac)}/>"
        f"<source network={_q(vm.network)}/><model type='virtio'/></interface>"
        f"<serial type='file'><source path={_q(vm.console)}/><target port='0'/></serial>"
        "<graphics type='vnc' listen='127.0.0.1' autoport='yes'/>"
        "<memballoon model='none'/></devices></domain>"
    )
