"""An IPMI BMC emulator: pyghmi BMC servers backed by `HostModel` hosts, on 127.0.0.1 (UDP).

`HostBmc` subclasses pyghmi's `bmc.Bmc` (the in-memory server its fakebmc example builds on):
chassis power status and control, boot options (device, persistent and EFI flags, which
pyghmi's base class drops), Get Device ID with the BMC firmware version, system GUID, and FRU 0
(board and product areas generated from the host's inventory) so that a client's inventory
call returns the manufacturer, model and serial. Faults: `unreachable` drops every packet (the
client times out), `error_rate` answers 0xFF, and power or boot writes during the conflict
window after a power off are answered 0xC0 (node busy).

One listener thread (`_Listener`, a plain select() loop) serves all the BMCs of the process,
however many emulators there are; pyghmi's own shared IO loop is not used for them. Measured in
emulators.md: ~100-200 BMCs per process is the comfortable size (pyghmi's select loop slows
down linearly with sockets).

Cipher-suite workaround (pyghmi 1.6.19): a pyghmi *client* proposes cipher suite 17
(RAKP-HMAC-SHA256) first; pyghmi's *server* ignores the proposal, answers OK with SHA1
algorithms, and the client then fails in `_got_rakp2` ("pack expected 32 items for packing (got
20)"). We patch the server, once per process, to reject any proposal whose authentication
algorithm is not RAKP-HMAC-SHA1 (RMCP+ status 0x11, "no matching cipher suite"), so clients
fall back to suite 3, which both sides implement. ipmitool's default (auto, via Get Channel
Cipher Suites) and `-C 3` are unaffected; `ipmitool -C 17` now fails cleanly.
"""

import logging
import select
import socket
import struct
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from pyghmi.ipmi import bmc as pyghmi_bmc  # type: ignore[import-untyped]
from pyghmi.ipmi.private import serversession  # type: ignore[import-untyped]
from pyghmi.ipmi.private import session as pyghmi_session

from metalcubed.simulators import hostmodel

LOG = logging.getLogger(__name__)
NODE_BUSY = 0xC0
UNSPECIFIED_ERROR = 0xFF
INVALID_FIELD = 0xCC
METALCUBED_IANA = 0xC0FFE  # a made-up manufacturer id (20 bits), not a registered enterprise

_patch_lock = threading.Lock()
_patched = False
def apply_cipher_suite_workaround() -> None:
    """Make pyghmi's server refuse non-SHA1 cipher suite proposals (see module docstring)."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        original = serversession.ServerSession.create_open_session_response

        def suite3_only(self: Any, request: bytearray) -> bytearray:
            # request[12]: the proposed authentication algorithm; 1 = RAKP-HMAC-SHA1.
            if len(request) > 12 and request[12] != 1:
                return bytearray([request[0], 0x11, 0, 0]) + request[4:8] + bytearray(4)
            result: bytearray = original(self, request)
            return result

        serversession.ServerSession.create_open_session_response = suite3_only
        _patched = True


# IPMI boot device selector (Set System Boot Options, parameter 5, data 2 bits 5:2).
_DEVICE_BITS = {
    hostmodel.BootDevice.NONE: 0x0,
    hostmodel.BootDevice.PXE: 0x1,
    hostmodel.BootDevice.HDD: 0x2,
    hostmodel.BootDevice.CD: 0x5,
    hostmodel.BootDevice.BIOS_SETUP: 0x6,
    hostmodel.BootDevice.USB: 0xF,
}
_BITS_DEVICE = {bits: device for device, bits in _DEVICE_BITS.items()}


def _tlv(text: str) -> bytes:
    data = text.encode("ascii", "replace")[:63]
    return bytes([0xC0 | len(data)]) + data


def _area(fields: Sequence[bytes], prefix: bytes) -> bytes:
    body = bytearray([1, 0]) + prefix + b"".join(fields) + b"\xc1"
    while (len(body) + 1) % 8:
        body.append(0)
    body[1] = (len(body) + 1) // 8
    body.append((-sum(body)) & 0xFF)
    return bytes(body)


def fru_image(host: hostmodel.HostModel) -> bytes:
    """FRU 0 as IPMI Platform Management FRU spec 1.2: header, board area, product area."""
    inv = host.inventory
    board = _area([_tlv(inv.manufacturer), _tlv(inv.model), _tlv(inv.serial), _tlv(inv.sku),
                   _tlv("")], bytes([0, 0, 0, 0]))  # language 0, manufacture date unspecified
    product = _area([_tlv(inv.manufacturer), _tlv(inv.model), _tlv(inv.sku),
                     _tlv(host.firmware().get("bios", "")), _tlv(inv.serial), _tlv(""),
                     _tlv("")], bytes([0]))
    board_offset = 1
    product_offset = board_offset + len(board) // 8
    header = bytearray([1, 0, 0, board_offset, product_offset, 0, 0])
    header.append((-sum(header)) & 0xFF)
    return bytes(header) + board + product


class HostBmc(pyghmi_bmc.Bmc):  # type: ignore[misc]
    """A pyghmi BMC server for one `HostModel`."""

    def __init__(self, host: hostmodel.HostModel, authdata: dict[str, str], *, port: int,
                 address: str = "127.0.0.1") -> None:
        super().__init__(authdata, port=port, bmcuuid=uuid.UUID(host.uuid), address=address)
        # pyghmi routes session packets by the port it was given; with port 0 (ephemeral) it
        # must learn the one the kernel picked, or every RAKP message is dropped.
        self.port = self.serversocket.getsockname()[1]
        # Our listener reads this socket, not pyghmi's shared IO thread (see _Listener).
        if self.serversocket in pyghmi_session.iosockets:
            pyghmi_session.iosockets.remove(self.serversocket)
        self.host = host
        self.mfgid = METALCUBED_IANA
        self.prodid = 0x0303
        major, _, minor = host.firmware().get("bmc", "1.0").partition(".")
        self.firmwaremajor = int(major) & 0x7F if major.isdigit() else 1
        digits = "".join(c for c in minor if c.isdigit())[:2] or "0"
        self.firmwareminor = int(digits, 16) & 0xFF  # BCD, as the spec encodes it
        self.fru = fru_image(host)
        self.commands = 0

    @property
    def bound_port(self) -> int:
        port: int = self.serversocket.getsockname()[1]
        return port

    # -- faults -----------------------------------------------------------------------------------

    def sessionless_data(self, data: bytes, sockaddr: Any) -> None:
        if self.host.faults.unreachable:
            return
        super().sessionless_data(data, sockaddr)

    def handle_raw_request(self, request: dict[str, Any], session: Any) -> None:
        faults = self.host.faults
        # The one BMC fault model (hostmodel.Faults.draw), as the Redfish emulator, the Sim
        # BMCs and the fleet model use it; 409-style refusals are the per-command _busy().
        reply = faults.draw(self.host.rng)
        if reply is hostmodel.Reply.TIMEOUT:
            return  # dropped: the client's retries time out
        self.commands += 1
        delay = faults.latency(self.host.rng)
        if delay > 0:
            time.sleep(delay)  # blocks this process's listen loop: keep emulated latency small
        if reply is hostmodel.Reply.UNAVAILABLE:
            session.send_ipmi_response(code=NODE_BUSY)
            return
        if reply is hostmodel.Reply.SERVER_ERROR:
            session.send_ipmi_response(code=UNSPECIFIED_ERROR)
            return
        netfn, command = request["netfn"], request["command"]
        if netfn == 0x0A and command == 0x10:  # Get FRU Inventory Area Info
            self._fru_info(request, session)
        elif netfn == 0x0A and command == 0x11:  # Read FRU Data
            self._fru_read(request, session)
        else:
            super().handle_raw_request(request, session)

    def _busy(self) -> bool:
        return self.host.in_conflict_window()

    # -- power ------------------------------------------------------------------------------------

    def get_power_state(self) -> str:
        # IPMI reports the chassis power rail: on as soon as a power-on starts (the server is
        # then in POST), and until a power-off has finished. Reporting a host in POST as off
        # made clients power it on twice or miss that it was booting.
        return "off" if self.host.power is hostmodel.Power.OFF else "on"

    def power_on(self) -> int:
        if self._busy():
            return NODE_BUSY
        self.host.power_on()
        return 0

    def power_off(self) -> int:
        if self._busy():
            return NODE_BUSY
        self.host.power_off(hard=True)
        return 0

    def power_shutdown(self) -> int:
        if self._busy():
            return NODE_BUSY
        self.host.power_off(hard=False)
        return 0

    def power_reset(self) -> int:
        if self._busy():
            return NODE_BUSY
        self.host.reboot(hard=True)
        return 0

    def power_cycle(self) -> int:
        return self.power_reset()

    def pulse_diag(self) -> int:
        return 0

    def is_active(self) -> bool:
        return self.get_power_state() == "on"

    def get_system_guid(self) -> uuid.UUID:
        return uuid.UUID(self.host.uuid)

    def cold_reset(self) -> int:
        return 0

    # -- boot options (parameter 5: boot flags) ---------------------------------------------------

    def get_system_boot_options(self, request: dict[str, Any], session: Any) -> None:
        if request["data"][0] != 5:
            session.send_ipmi_response(code=0x80)  # parameter not supported
            return
        device, persistent = self.host.boot_override()
        flags = 0
        if device is not hostmodel.BootDevice.NONE:
            flags = 0x80 | (0x40 if persistent else 0)
        if self.host.boot_mode is hostmodel.BootMode.UEFI:
            flags |= 0x20
        session.send_ipmi_response(data=[1, 5, flags, _DEVICE_BITS[device] << 2, 0, 0, 0])

    def set_system_boot_options(self, request: dict[str, Any], session: Any) -> None:
        data = request["data"]
        if data[0] in (0, 3, 4):  # set-in-progress, service partition, boot info ack
            session.send_ipmi_response()
            return
        if data[0] != 5 or len(data) < 3:
            session.send_ipmi_response(code=INVALID_FIELD)
            return
        if self._busy():
            session.send_ipmi_response(code=NODE_BUSY)
            return
        flags, selector = data[1], (data[2] >> 2) & 0x0F
        device = _BITS_DEVICE.get(selector)
        if device is None:
            session.send_ipmi_response(code=INVALID_FIELD)
            return
        if not flags & 0x80:
            device = hostmodel.BootDevice.NONE
        self.host.set_boot_device(device, persistent=bool(flags & 0x40))
        self.host.set_boot_mode(hostmodel.BootMode.UEFI if flags & 0x20
                                else hostmodel.BootMode.LEGACY)
        session.send_ipmi_response()

    # -- FRU --------------------------------------------------------------------------------------

    def _fru_info(self, request: dict[str, Any], session: Any) -> None:
        if request["data"][:1] != [0] and bytes(request["data"][:1]) != b"\x00":
            session.send_ipmi_response(code=0xCB)  # requested FRU not present
            return
        session.send_ipmi_response(data=list(struct.pack("<HB", len(self.fru), 0)))

    def _fru_read(self, request: dict[str, Any], session: Any) -> None:
        data = request["data"]
        if len(data) < 4 or data[0] != 0:
            session.send_ipmi_response(code=0xCB)
            return
        offset = data[1] | (data[2] << 8)
        chunk = self.fru[offset : offset + data[3]]
        session.send_ipmi_response(data=[len(chunk), *chunk])


class _Listener:
    """The thread that reads every emulated BMC's socket in the process and hands each datagram
    to the pyghmi server session it belongs to (the routing pyghmi's `_io_graball` does).

    pyghmi's own loop (`Session.wait_for_rsp` over its shared IO thread) loses wakeups under
    load: its `_io_wait` blocks on an event without a timeout, and when the IO thread misses
    setting it the loop, and with it every BMC of the process, stops answering (seen here
    with 8 concurrent clients against 100 BMCs). So the server sockets are taken out of pyghmi's
    IO thread and served by a plain select() loop. Server-side session expiry, which pyghmi
    drives from that loop, does not run: a session simply lives until the emulator stops.
    Started with the first running emulator, stopped with the last.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[Any] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, sockets: Sequence[Any]) -> None:
        with self._lock:
            self._sockets.update(sockets)
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                                name="ipmi-emulator", daemon=True)
                self._thread.start()

    def remove(self, sockets: Sequence[Any]) -> None:
        with self._lock:
            self._sockets.difference_update(sockets)
            if self._sockets or self._thread is None:
                return
            self._stop.set()
            thread, self._thread = self._thread, None
        thread.join(timeout=5)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                sockets = list(self._sockets)
            try:
                ready = select.select(sockets, [], [], 0.2)[0]
            except (OSError, ValueError):
                continue  # a socket was closed under us by stop(); the next pass drops it
            for sock in ready:
                try:
                    self._drain(sock)
                except Exception:  # one bad packet must not stop every BMC
                    LOG.exception("IPMI emulator: error while serving a request")

    @staticmethod
    def _drain(sock: Any) -> None:
        myport = sock.getsockname()[1]
        handlers = pyghmi_session.Session.bmc_handlers
        while True:
            try:
                # MSG_DONTWAIT: pyghmi flips the socket back to blocking whenever it sends.
                data, addr = sock.recvfrom(3000, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(data) < 4:
                continue
            if addr in handlers and myport in handlers[addr]:
                session = handlers[addr][myport]  # a client's established session
                session.pktqueue.append((data, addr, sock, True))
            elif sock in handlers:
                session = handlers[sock][0]  # the BMC itself: sessionless data
                session.pktqueue.append((data, addr, sock, False))
            else:
                continue  # the emulator was stopped
            session.process_pktqueue()


_LISTENER = _Listener()


class IpmiEmulator:
    """One `HostBmc` per host on 127.0.0.1, ports `base_port + i` (0: ephemeral ports).

    `start()` binds the sockets (the shared listen thread runs while any emulator does);
    `stop()` unregisters this emulator's BMCs and closes their sockets.
    Use as a context manager.
    """

    def __init__(self, hosts: Sequence[hostmodel.HostModel], *,
                 credentials: tuple[str, str] = ("admin", "password"), base_port: int = 0) -> None:
        self.hosts = list(hosts)
        self._authdata = {credentials[0]: credentials[1]}
        self.base_port = base_port
        self.bmcs: list[HostBmc] = []

    def start(self) -> "IpmiEmulator":
        if self.bmcs:
            return self
        apply_cipher_suite_workaround()
        for i, host in enumerate(self.hosts):
            port = self.base_port + i if self.base_port else 0
            self.bmcs.append(HostBmc(host, self._authdata, port=port))
        _LISTENER.add([server.serversocket for server in self.bmcs])
        return self

    def stop(self) -> None:
        if not self.bmcs:
            return
        sockets = [server.serversocket for server in self.bmcs]
        _LISTENER.remove(sockets)
        handlers = pyghmi_session.Session.bmc_handlers
        for sock in sockets:
            handlers.pop(sock, None)
            port = sock.getsockname()[1]
            for addr in [a for a, by_port in list(handlers.items())
                         if isinstance(by_port, dict) and port in by_port]:
                handlers[addr].pop(port, None)
            sock.close()
        self.bmcs = []
        for host in self.hosts:
            host.close()

    def port(self, host: hostmodel.HostModel) -> int:
        return self.bmcs[self.hosts.index(host)].bound_port

    def bmc_address(self, host: hostmodel.HostModel, scheme: str = "ipmi") -> str:
        """A `spec.bmc.address` for `host`, e.g. "ipmi://127.0.0.1:40123"."""
        return f"{scheme}://127.0.0.1:{self.port(host)}"

    def __enter__(self) -> "IpmiEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
