"""Fixtures for driver tests against the BMC emulators, over real HTTP and UDP on 127.0.0.1.

Every server a test starts listens on loopback only and is stopped by the fixture that started
it. Clients get fast retry policies so that fault tests stay within a couple of seconds.
"""

import functools
import http.server
import pathlib
import shutil
import threading
from collections.abc import Iterator

import pytest

from metalcubed.controllers.bmc.ipmi import capabilities as ipmi_caps
from metalcubed.controllers.bmc.redfish import client
from metalcubed.core import bmc, ports
from metalcubed.simulators import hostmodel
from metalcubed.simulators.ipmi import emulator as ipmi_emulator
from metalcubed.simulators.redfish import emulator as redfish_emulator

CREDS = ports.Credentials(username="admin", password="password")


@pytest.fixture
def hosts() -> list[hostmodel.HostModel]:
    return hostmodel.make_hosts(3)


@pytest.fixture
def redfish(hosts: list[hostmodel.HostModel]) -> Iterator[redfish_emulator.RedfishEmulator]:
    with redfish_emulator.RedfishEmulator(hosts, hang_s=10.0) as emulator:
        yield emulator


@pytest.fixture
def clients() -> client.Clients:
    return client.Clients(client.ClientConfig(
        connect_timeout_s=1.0, read_timeout_s=2.0, connect_retry_delay_s=0.05,
        max_body_bytes=1024 * 1024,
        retry=client.RetryPolicy(attempts=6, budget_s=8.0, base_delay_s=0.05,
                                 max_delay_s=0.5, max_retry_after_s=1.0)))


def redfish_access(emulator: redfish_emulator.RedfishEmulator, host: hostmodel.HostModel, *,
                   scheme: str = "redfish-virtualmedia",
                   creds: ports.Credentials = CREDS, verify: bool = True) -> bmc.BmcAccess:
    return bmc.BmcAccess.of(emulator.bmc_address(host, scheme), creds, verify_tls=verify)


@pytest.fixture
def ipmi(hosts: list[hostmodel.HostModel]) -> Iterator[ipmi_emulator.IpmiEmulator]:
    with ipmi_emulator.IpmiEmulator(hosts) as emulator:
        yield emulator


@pytest.fixture
def sessions() -> ipmi_caps.Sessions:
    return ipmi_caps.Sessions(ipmi_caps.RetryPolicy(attempts=6, budget_s=8.0, base_delay_s=0.1,
                                                    max_delay_s=0.5, call_timeout_s=3.0))


@pytest.fixture
def ipmitool() -> str:
    path = shutil.which("ipmitool")
    if path is None:
        pytest.fail("ipmitool is missing: apt-get update && apt-get install -y ipmitool")
    return path


@pytest.fixture
def image_server(tmp_path: pathlib.Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving `ramdisk.iso` (256 KiB); yields its base URL."""
    (tmp_path / "ramdisk.iso").write_bytes(b"\0" * 256 * 1024)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
