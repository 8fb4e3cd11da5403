"""The BMC capability contract (core/testing/bmc_contract.py) over every implementation:

- redfish: the real Redfish drivers (sushy) against the sushy-tools-based emulator over HTTP on
  127.0.0.1, virtual media and a BIOS firmware image fetched from a loopback image server;
- ipmi: the real IPMI drivers (pyghmi) against the pyghmi-based emulator over UDP on 127.0.0.1
  (no virtual media, BIOS, firmware updates, RAID or events: Unsupported, as upstream's ipmi
  hardware type);
- sim: the Sim capabilities straight over the host model (simulators/hostmodel_bmc.py), RAID
  by raidmodel.SimRaid;
- fleet: the fleet model's capabilities over a simulated machine, in simpy time (no events:
  Unsupported; credentials, "no override" and the USB slot are not modelled: the engine uses
  none of them).

Power transitions are polled (bounded) on the emulators and driven in simulated time on the
fleet model; the host model's transitions are instant.
"""

import dataclasses
from collections.abc import Iterator

import pytest

from metalcubed.core import bmc
from metalcubed.core.testing import bmc_contract
from metalcubed.simulators import (
    firmwareimage,
    hostmodel,
    hostmodel_bmc,
    imageserver,
    raidmodel,
)
from metalcubed.simulators.ipmi import emulator as ipmi_emulator
from metalcubed.simulators.redfish import emulator as redfish_emulator
from tests.contract import bmcs, fleet

C = bmc.Capability
ALL = frozenset(C)
BIOS_CHANGE: dict[str, bmc.BiosValue] = {"ProcVirtualization": "Disabled", "PxeRetryCount": 5}


def _host() -> hostmodel.HostModel:
    return hostmodel.HostModel(name="contract-0", inventory=hostmodel.make_inventory(0))


@pytest.fixture
def redfish_harness() -> Iterator[bmc_contract.BmcHarness]:
    host = _host()
    images = imageserver.ImageServer()
    with redfish_emulator.RedfishEmulator([host], hang_s=10.0) as emulator:
        images.start()
        try:
            urls = (images.add("first.iso", b"1" * 4096), images.add("second.iso", b"2" * 4096))
            bios_image = images.add(firmwareimage.file_name("bios", "2.9.0"),
                                    firmwareimage.make("bios", "2.9.0"))
            driver = bmcs.redfish_driver(bmcs.fast_clients(), virtual_media=True)
            address = emulator.bmc_address(host, "redfish-virtualmedia")
            closed = f"redfish+http://127.0.0.1:{bmcs.closed_port()}/redfish/v1/Systems/x"
            yield bmc_contract.BmcHarness(
                driver=driver,
                access=bmc.BmcAccess.of(address, bmcs.CREDS),
                supported=ALL,
                wait_until=bmcs.poll,
                not_modelled=bmcs.not_modelled,
                wrong_password=bmc.BmcAccess.of(address, bmcs.WRONG),
                unreachable=(driver, bmc.BmcAccess.of(closed, bmcs.CREDS)),
                media_urls=urls,
                bios_change=BIOS_CHANGE,
                boots=lambda: len(host.boots),
                firmware_image=("bios", bios_image, "2.9.0"),
            )
        finally:
            images.stop()


@pytest.fixture
def ipmi_harness() -> Iterator[bmc_contract.BmcHarness]:
    host = _host()
    with ipmi_emulator.IpmiEmulator([host]) as emulator:
        driver = bmcs.ipmi_driver(bmcs.fast_sessions())
        address = emulator.bmc_address(host)
        yield bmc_contract.BmcHarness(
            driver=driver,
            access=bmc.BmcAccess.of(address, bmcs.CREDS),
            supported=frozenset({C.POWER, C.MANAGEMENT, C.INSPECT, C.FIRMWARE}),
            # IPMI boot flags have no UEFI HTTP boot: the driver raises UnsupportedCapability.
            boot_devices=frozenset(bmc.BootDevice) - {bmc.BootDevice.UEFI_HTTP},
            wait_until=bmcs.poll,
            not_modelled=bmcs.not_modelled,
            wrong_password=bmc.BmcAccess.of(address, bmcs.WRONG),
            unreachable=(driver, bmc.BmcAccess.of(
                f"ipmi://127.0.0.1:{bmcs.closed_port(bmcs.UDP)}", bmcs.CREDS)),
            boots=lambda: len(host.boots),
            firmware_updates=False,
        )


@pytest.fixture
def sim_harness() -> bmc_contract.BmcHarness:
    host = _host()
    address = "redfish-virtualmedia://192.0.2.1/redfish/v1/Systems/contract-0"
    sims = hostmodel_bmc.SimBmcs({address: host}, credentials=bmcs.CREDS)
    access = bmc.BmcAccess.of(address, bmcs.CREDS)
    # SimRaid is not (yet) in hostmodel_bmc's hardware type: the contract holds it here.
    driver = dataclasses.replace(hostmodel_bmc.driver_for(sims)(access),
                                 raid=raidmodel.SimRaid(sims))
    nowhere = bmc.BmcAccess.of("redfish-virtualmedia://192.0.2.99/redfish/v1/Systems/x",
                               bmcs.CREDS)
    return bmc_contract.BmcHarness(
        driver=driver,
        access=access,
        supported=ALL,
        wait_until=bmcs.poll,  # instant transitions: the first check holds
        not_modelled=bmcs.not_modelled,
        wrong_password=bmc.BmcAccess.of(address, bmcs.WRONG),
        unreachable=(driver, nowhere),
        media_urls=("http://images.test/first.iso", "http://images.test/second.iso"),
        bios_change=BIOS_CHANGE,
        boots=lambda: len(host.boots),
        firmware_image=("bios", "http://images.test/" + firmwareimage.file_name("bios", "2.9.0"),
                        "2.9.0"),
    )


@pytest.fixture
def fleet_harness() -> bmc_contract.BmcHarness:
    world = fleet.FleetWorld(hung=("hung",))
    access = world.access("m0", bmcs.CREDS)
    hung = world.access("hung", bmcs.CREDS)
    return bmc_contract.BmcHarness(
        driver=world.fleet.driver_for(access),
        access=access,
        supported=frozenset({C.POWER, C.MANAGEMENT, C.BOOT, C.INSPECT, C.BIOS, C.FIRMWARE}),
        wait_until=world.wait_until,
        not_modelled=bmcs.not_modelled,
        wrong_password=None,
        unreachable=(world.fleet.driver_for(hung), hung),
        bios_change=BIOS_CHANGE,
        boots=lambda: world.machines["m0"].boots,
        media_urls=("http://boot.metalcubed.sim/first.iso", "http://boot.metalcubed.sim/second.iso"),
        boot_devices=frozenset({bmc.BootDevice.PXE, bmc.BootDevice.CDROM, bmc.BootDevice.DISK}),
        media_devices=frozenset({bmc.MediaDevice.CD}),
    )


IMPLEMENTATIONS = ["redfish", "ipmi", "sim", "fleet"]


class TestBmcContract(bmc_contract.BmcContract):
    @pytest.fixture(params=IMPLEMENTATIONS)
    def harness(self, request: pytest.FixtureRequest) -> bmc_contract.BmcHarness:
        found: bmc_contract.BmcHarness = request.getfixturevalue(f"{request.param}_harness")
        return found
