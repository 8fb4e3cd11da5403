"""The libvirt backend's pure parts: the XML it hands libvirt, its dependency list, its
settings' checks, its ledger. No libvirt needed (the VMs are in test_lab.py)."""

import dataclasses
import json
import pathlib
import re
import xml.etree.ElementTree as ET

import pytest

from metalcubed.simulators.devenv import config
from metalcubed.simulators.devenv.libvirtlab import backend, deps, domainxml, ledger

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _net() -> domainxml.Net:
    return domainxml.Net(name="mc3-abc", bridge="mc3brabc", prefix="172.22.5",
                         boot_url="http://172.22.5.1:8000/files/boot.ipxe",
                         hosts=(("52:54:00:00:00:01", "172.22.5.10", "host-0"),))


def test_the_network_is_isolated_without_dns_and_hands_out_fixed_leases_and_the_ipxe_script(
) -> None:
    net = ET.fromstring(domainxml.network(_net()))
    assert net.find("forward") is None  # no <forward>: libvirt rejects forwarding, no NAT
    assert net.find("dns").get("enable") == "no"  # dnsmasq forwards no query out
    ip = net.find("ip")
    assert (ip.get("address"), ip.get("netmask")) == ("172.22.5.1", "255.255.255.0")
    assert ip.find("dhcp/host").attrib == {"mac": "52:54:00:00:00:01", "ip": "172.22.5.10",
                                           "name": "host-0"}
    assert ip.find("dhcp/bootp").get("file") == "http://172.22.5.1:8000/files/boot.ipxe"
    assert _net().gateway == "172.22.5.1"


def test_a_domain_is_tcg_with_its_console_in_a_file_and_vnc_on_loopback_only() -> None:
    vm = domainxml.Vm(name="mc3-abc-host-0", uuid="1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                      mac="52:54:00:00:00:01", network="mc3-abc", disk="/v/d.qcow2",
                      console="/v/c.log", uefi=False)
    dom = ET.fromstring(domainxml.domain(vm))
    assert dom.get("type") == "qemu"  # TCG: /dev/kvm here cannot run a kernel
    assert dom.find("cpu").get("mode") == "maximum"
    assert dom.find("memory").text == "512" and dom.find("memory").get("unit") == "MiB"
    assert dom.find("os/loader") is None  # SeaBIOS
    assert dom.find("devices/disk/target").attrib == {"dev": "sda", "bus": "sata"}
    assert dom.find("devices/interface/mac").get("address") == vm.mac
    assert dom.find("devices/interface/source").get("network") == "mc3-abc"
    assert dom.find("devices/serial/source").get("path") == "/v/c.log"
    assert dom.find("devices/graphics").get("listen") == "127.0.0.1"
    uefi = ET.fromstring(domainxml.domain(dataclasses.replace(vm, uefi=True, nvram="/v/n.fd")))
    assert uefi.find("os/loader").text == domainxml.OVMF_CODE
    assert uefi.find("os/nvram").get("template") == domainxml.OVMF_VARS
    kvm = ET.fromstring(domainxml.domain(dataclasses.replace(vm, kvm=True)))
    assert kvm.get("type") == "kvm" and kvm.find("cpu").get("mode") == "host-passthrough"


def test_macs_are_unique_per_host_and_stable_per_lab() -> None:
    macs = {backend.mac_for("lab1", i) for i in range(8)}
    assert len(macs) == 8
    assert backend.mac_for("lab1", 3) == backend.mac_for("lab1", 3) != backend.mac_for("lab2", 3)
    assert all(re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", m) for m in macs)


def test_make_devenv_deps_installs_exactly_what_up_checks_for() -> None:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    listed = re.search(r"^DEVENV_APT = (.*)$", text, re.M)
    assert listed is not None
    assert tuple(listed.group(1).split()) == deps.APT_PACKAGES
    assert set(deps._FILES.values()) <= set(deps.APT_PACKAGES)
    assert "pip install -q " + " ".join(deps.PIP_PACKAGES) in text
    assert deps.APT_COMMAND.endswith(" ".join(deps.APT_PACKAGES))


@pytest.mark.parametrize(("changes", "flag"), [
    ({"backend": "vmware"}, "--backend"),
    ({"backend": "libvirt", "hosts": config.MAX_VMS + 1}, "--hosts"),
])
def test_bad_libvirt_settings_name_their_flag(changes: dict[str, object], flag: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.check(config.LabConfig(**{"hosts": 2, **changes}))  # type: ignore[arg-type]
    assert err.value.flag == flag


def test_the_libvirt_backend_uses_vm_timings_whatever_timing_says() -> None:
    cfg = config.LabConfig(hosts=2, backend="libvirt", timing="fast")
    assert cfg.hardware() is config.VM
    assert config.LabConfig.from_json(cfg.to_json()).backend == "libvirt"


def test_teardown_without_a_ledger_does_nothing_and_a_spent_ledger_is_removed(
        tmp_path: pathlib.Path) -> None:
    assert ledger.teardown(tmp_path) == []
    record = ledger.Ledger(lab_id="x1", processes=[{"pid": 999999999, "mark": str(tmp_path)}])
    record.save(tmp_path)
    assert json.loads((tmp_path / ledger.FILE).read_text())["lab_id"] == "x1"
    assert ledger.teardown(tmp_path) == []  # the process is long gone: nothing to stop
    assert not (tmp_path / ledger.FILE).exists()
    assert ledger.teardown(tmp_path) == []


def test_up_names_what_is_missing_and_the_command_before_starting_anything(
        tmp_path: pathlib.Path) -> None:
    """vbmc/vbmcd off the PATH: `up --backend libvirt` exits 1 naming virtualbmc and the pip
    command, and starts no lab."""
    import subprocess
    import sys

    env = {"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "metalcubed.cli", "devenv", "up", "--backend",
                           "libvirt", "--hosts", "1", "--dir", str(tmp_path / "lab")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Python packages missing: virtualbmc" in proc.stderr
    assert deps.PIP_COMMAND in proc.stderr and "make devenv-deps" in proc.stderr
    assert not (tmp_path / "lab" / "lab.pid").exists()
