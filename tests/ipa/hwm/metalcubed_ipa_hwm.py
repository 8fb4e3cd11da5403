"""A hardware manager for Ironic Python Agent: the test's host, whose disks are files.

Loaded by stock IPA through its `ironic_python_agent.hardware_managers` entry point (no IPA
code is patched). It reports SERVICE_PROVIDER support, so IPA dispatches to it before its
GenericHardwareManager: the inventory (NICs, CPU, memory, disks, BMC, vendor, boot mode) comes
from the JSON file named by $METALCUBED_IPA_HOST, the root disk is the first disk file, and
the `erase_devices_metadata` clean step zeroes the first and last MiB of every disk file (what
wiping partition tables and signatures does to a real disk).
"""

import json
import os

from ironic_python_agent import errors, hardware

MIB = 1024 * 1024


def _host() -> dict:
    with open(os.environ["METALCUBED_IPA_HOST"]) as f:
        return json.load(f)


class FileHardwareManager(hardware.HardwareManager):
    HARDWARE_MANAGER_NAME = "metalcubed_file_hardware_manager"
    HARDWARE_MANAGER_VERSION = "1.0"

    def evaluate_hardware_support(self):
        return hardware.HardwareSupport.SERVICE_PROVIDER if "METALCUBED_IPA_HOST" in os.environ \
            else hardware.HardwareSupport.NONE

    def list_network_interfaces(self):
        return [hardware.NetworkInterface(n["name"], n["mac"], ipv4_address=n.get("ip"),
                                          has_carrier=True, speed_mbps=n.get("speed_mbps"),
                                          product=n.get("product"))
                for n in _host()["nics"]]

    def get_cpus(self):
        cpu = _host()["cpu"]
        return hardware.CPU(cpu["model"], cpu["mhz"], cpu["count"], cpu["arch"],
                            flags=cpu.get("flags", []))

    def get_memory(self):
        mb = _host()["memory_mb"]
        return hardware.Memory(total=mb * MIB, physical_mb=mb)

    def list_block_devices(self, include_partitions=False, all_serial_and_wwn=False):
        return [hardware.BlockDevice(d["path"], d["model"], d["size"], d["rotational"],
                                     serial=d["serial"], vendor=d.get("vendor"))
                for d in _host()["disks"]]

    def list_block_devices_check_skip_list(self, node, include_partitions=False,
                                           all_serial_and_wwn=False):
        return self.list_block_devices(include_partitions)

    def get_os_install_device(self, permit_refresh=False):
        disks = _host()["disks"]
        if not disks:
            raise errors.DeviceNotFound("the test host has no disks")
        return disks[0]["path"]

    def get_bmc_address(self):
        return _host().get("bmc_address", "0.0.0.0")

    def get_bmc_v6address(self):
        return "::/0"

    def get_bmc_mac(self):
        raise errors.IncompatibleHardwareMethodError()

    def get_system_vendor_info(self):
        v = _host()["vendor"]
        return hardware.SystemVendorInfo(
            product_name=v["product"], serial_number=v["serial"], manufacturer=v["manufacturer"],
            firmware=hardware.SystemFirmware(vendor=v["bios_vendor"], version=v["bios_version"],
                                             build_date=v["bios_date"]))

    def get_boot_info(self):
        host = _host()
        return hardware.BootInfo(current_boot_mode=host.get("boot_mode", "uefi"),
                                 pxe_interface=host["nics"][0]["mac"])

    def get_clean_steps(self, node, ports):
        return [{"step": "erase_devices_metadata", "priority": 99, "interface": "deploy",
                 "reboot_requested": False, "abortable": True}]

    def erase_devices_metadata(self, node, ports):
        wipes = os.path.join(os.path.dirname(_host()["disks"][0]["path"]), "wipes")
        with open(wipes, "a") as f:  # what the test counts
            f.write("wipe\n")
        for disk in _host()["disks"]:
            size = os.path.getsize(disk["path"])
            with open(disk["path"], "r+b") as f:
                f.write(b"\0" * min(MIB, size))
                if size > MIB:
                    f.seek(max(MIB, size - MIB))
                    f.write(b"\0" * (size - max(MIB, size - MIB)))

    def full_sync(self):
        return None
