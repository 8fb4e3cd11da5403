"""BMC implementations for the contract runners, as production composes them but with short
timeouts: the real Redfish (sushy) and IPMI (pyghmi) drivers per scheme (the hardware types of
controllers/bmc/hardware.py), and helpers shared by the BMC and Provisioner runners.

Every server these runners start listens on 127.0.0.1 and is stopped by the fixture that
started it.
"""

import socket
import time
from collections.abc import Callable
from typing import NoReturn

import pytest

from metalcubed.controllers.bmc import unsupported
from metalcubed.controllers.bmc.ipmi import capabilities as ipmi
from metalcubed.controllers.bmc.redfish import capabilities as redfish
from metalcubed.controllers.bmc.redfish import client
from metalcubed.controllers.bmc.redfish import raid as redfish_raid
from metalcubed.core import bmc, ports
from metalcubed.core.provisioning import engine

CREDS = ports.Credentials(username="admin", password="password")
WRONG = ports.Credentials(username="admin", password="not-the-password")
POLL_S = 0.02
WAIT_S = 15.0
"""How long a runner polls a real emulator for an effect before failing (loopback: far more
than enough; a failure names what it waited for)."""


def fast_clients() -> client.Clients:
    return client.Clients(client.ClientConfig(
        connect_timeout_s=1.0, read_timeout_s=3.0, connect_retry_delay_s=0.05,
        retry=client.RetryPolicy(attempts=3, budget_s=3.0, base_delay_s=0.05,
                                 max_delay_s=0.5, max_retry_after_s=0.5)))


def fast_sessions() -> ipmi.Sessions:
    return ipmi.Sessions(ipmi.RetryPolicy(attempts=2, budget_s=3.0, base_delay_s=0.05,
                                          max_delay_s=0.5, call_timeout_s=1.5))


def redfish_driver(clients: client.Clients, *, virtual_media: bool) -> bmc.Driver:
    name = "redfish-virtualmedia" if virtual_media else "redfish"
    boot: bmc.Boot = (redfish.RedfishVirtualMedia(clients) if virtual_media
                      else unsupported.UnsupportedBoot(name))
    return bmc.HardwareType(
        name=name, power=(redfish.RedfishPower(clients),),
        management=(redfish.RedfishManagement(clients),), boot=(boot,),
        inspect=(redfish.RedfishInspect(clients),), bios=(redfish.RedfishBios(clients),),
        firmware=(redfish.RedfishFirmware(clients),), events=(redfish.RedfishEvents(clients),),
        raid=(redfish_raid.RedfishRaid(clients),),
    ).compose()


def ipmi_driver(sessions: ipmi.Sessions) -> bmc.Driver:
    return bmc.HardwareType(
        name="ipmi", power=(ipmi.IpmiPower(sessions),),
        management=(ipmi.IpmiManagement(sessions),),
        boot=(unsupported.UnsupportedBoot("ipmi"),), inspect=(ipmi.IpmiInspect(sessions),),
        bios=(unsupported.UnsupportedBios("ipmi"),), firmware=(ipmi.IpmiFirmware(sessions),),
        events=(unsupported.UnsupportedEvents("ipmi"),),
    ).compose()


def real_drivers() -> engine.DriverFor:
    """The engine's DriverFor over the real drivers, by scheme (hardware.py's table)."""
    clients, sessions = fast_clients(), fast_sessions()
    drivers = {
        "redfish": redfish_driver(clients, virtual_media=False),
        "redfish-virtualmedia": redfish_driver(clients, virtual_media=True),
        "ipmi": ipmi_driver(sessions),
    }
    return lambda access: drivers[access.address.type.name]


UDP = socket.SOCK_DGRAM


def closed_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def poll(predicate: Callable[[], bool], what: str) -> None:
    """Poll a real emulator until `predicate` holds; fail naming `what` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {WAIT_S:.0f} s: {what}")
        time.sleep(POLL_S)


def not_modelled(reason: str) -> NoReturn:
    pytest.skip(f"not modelled by this implementation: {reason}")
