"""The core.bmc capabilities over IPMI (RMCP+ lanplus), with pyghmi's `Command`.

IPMI gives power control, the boot device override (with persistent and EFI flags: the boot
mode travels as the `uefiboot` flag of Set System Boot Options) and, for inventory, FRU 0 plus
Get Device ID (vendor, product, serial, BMC firmware). It has no virtual media, BIOS settings
or event subscriptions: those capabilities are `Unsupported<X>` in the ipmi hardware type.

Sessions: one pyghmi `Command` per (host, port, user, password digest), logged in on first use
and reused; calls on one BMC are serialised (a lanplus session is a single conversation), calls
on different BMCs run in parallel. A refused login drops the cached command.

Session layer: pyghmi's `simplesession` with retransmission restored (see `session.py`): every
session owns its socket and waits synchronously, resending after 0.5-1 s and giving up after
about 6 s; on top of that each call has a deadline (`RetryPolicy.call_timeout_s`).

Errors: "Incorrect password" / "Unauthorized name" -> BmcAuthFailed; timeouts and lost
sessions -> BmcUnreachable; completion code 0xC0 (node busy) -> BmcBusy, retried within the
budget; other completion codes -> BmcRejected.
"""

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from pyghmi import exceptions as pyghmi_exc  # type: ignore[import-untyped]
from pyghmi.ipmi import command  # type: ignore[import-untyped]

from metalcubed.controllers.bmc.ipmi import parse, session
from metalcubed.core import bmc, outcome, ports
from metalcubed.core.api import hardwaredata as hwd

session.select_session_layer()

T = TypeVar("T")
_AUTH_MESSAGES = ("incorrect password", "unauthorized name", "unauthorized", "privilege")
_UNREACHABLE_MESSAGES = ("timeout", "no longer connected", "unable to", "no route")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 4
    budget_s: float = 20.0
    base_delay_s: float = 0.25
    max_delay_s: float = 4.0
    call_timeout_s: float = 15.0
    """A single IPMI call (login included) that has not answered by then is abandoned as
    unreachable: pyghmi's own retransmits can go on far longer against a silent BMC."""


@dataclass(slots=True)
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    cmd: Any = None
    busy_since: float | None = None
    """When the call holding `lock` started; None when idle."""


class Sessions:
    """Cached pyghmi commands, one per BMC and user, with retry and error translation."""

    def __init__(self, retry: RetryPolicy | None = None, *,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int, str, str], _Entry] = {}

    @staticmethod
    def _key(access: bmc.BmcAccess) -> tuple[str, int, str, str]:
        digest = hashlib.sha256(access.credentials.password.encode()).hexdigest()
        return (access.address.host, access.address.port, access.credentials.username, digest)

    def _entry(self, access: bmc.BmcAccess) -> _Entry:
        with self._lock:
            return self._entries.setdefault(self._key(access), _Entry())

    def forget(self, access: bmc.BmcAccess) -> None:
        with self._lock:
            self._entries.pop(self._key(access), None)

    def call(self, access: bmc.BmcAccess, operation: str, fn: Callable[[Any], T]) -> T:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._bounded(access, operation, fn)
            except bmc.BmcBusy:
                delay = min(self.retry.max_delay_s, self.retry.base_delay_s * 2 ** (attempt - 1))
                delay *= 0.5 + self._rng.random() / 2
                if attempt >= self.retry.attempts or \
                        time.monotonic() - started + delay > self.retry.budget_s:
                    raise
                self._sleep(delay)

    def _bounded(self, access: bmc.BmcAccess, operation: str, fn: Callable[[Any], T]) -> T:
        """Run the call in a daemon thread and stop waiting after `call_timeout_s`.

        Daemon, not a pool worker: a call stuck in pyghmi against a silent BMC must neither
        keep the process from exiting nor take a worker slot forever.
        """
        entry = self._entry(access)
        since = entry.busy_since
        if since is not None:
            stuck_s = time.monotonic() - since
            if stuck_s > 10 * self.retry.call_timeout_s:
                self.forget(access)  # give the BMC a fresh session (the old thread leaks)
            elif stuck_s > self.retry.call_timeout_s:
                raise bmc.BmcUnreachable(access.address.address, operation,
                                         "an earlier call is still unanswered")
        done = threading.Event()
        outcome_box: list[Any] = []

        def run() -> None:
            try:
                outcome_box.append((True, self._once(access, operation, fn)))
            except BaseException as err:  # handed to the caller below
                outcome_box.append((False, err))
            finally:
                done.set()

        threading.Thread(target=run, name="ipmi-call", daemon=True).start()
        if not done.wait(self.retry.call_timeout_s):
            # The thread may stay stuck inside pyghmi (it does not always give up on a silent
            # BMC); later calls fail fast until it returns, so at most one thread is stuck
            # per BMC and retry window.
            raise bmc.BmcUnreachable(access.address.address, operation,
                                     f"no answer within {self.retry.call_timeout_s:g}s")
        ok, value = outcome_box[0]
        if not ok:
            raise value
        result: T = value
        return result

    def _once(self, access: bmc.BmcAccess, operation: str, fn: Callable[[Any], T]) -> T:
        address = access.address.address
        entry = self._entry(access)
        with entry.lock:
            entry.busy_since = time.monotonic()
            try:
                if entry.cmd is None:
                    entry.cmd = command.Command(
                        bmc=access.address.host, userid=access.credentials.username,
                        password=access.credentials.password, port=access.address.port)
                return fn(entry.cmd)
            except pyghmi_exc.IpmiException as err:
                translated = _translate(err, address, operation)
                if not isinstance(translated, bmc.BmcBusy | bmc.BmcRejected):
                    entry.cmd = None  # the session is unusable; log in again next time
                if isinstance(translated, bmc.BmcAuthFailed):
                    self.forget(access)
                raise translated from err
            except parse.PayloadError as err:
                raise bmc.BmcBadResponse(address, operation, str(err)) from err
            except (pyghmi_exc.PyghmiException, OSError) as err:
                entry.cmd = None
                raise bmc.BmcUnreachable(address, operation, type(err).__name__) from err
            except (ValueError, TypeError, KeyError, IndexError, AssertionError) as err:
                # pyghmi decoding a malformed answer
                raise bmc.BmcBadResponse(
                    address, operation, f"unparseable answer ({type(err).__name__})") from err
            finally:
                entry.busy_since = None


def _translate(err: Any, address: str, operation: str) -> bmc.DriverError:
    text = str(err)
    lowered = text.lower()
    code = getattr(err, "ipmicode", 0) or 0
    if lowered in ("", "none"):
        # pyghmi marks a session broken without a message when its retransmits ran out.
        return bmc.BmcUnreachable(address, operation, "no answer (retransmits exhausted)")
    if any(m in lowered for m in _AUTH_MESSAGES):
        return bmc.BmcAuthFailed(address, operation, "credentials refused")
    if code == 0xC0 or "node busy" in lowered:
        return bmc.BmcBusy(address, operation, "node busy (completion code 0xC0)")
    if any(m in lowered for m in _UNREACHABLE_MESSAGES):
        return bmc.BmcUnreachable(address, operation, text[:200])
    return bmc.BmcRejected(address, operation, text[:200], status=code or 0xFF)


DEFAULT_SESSIONS = Sessions()


class _Ipmi:
    name = "ipmitool"
    """Ironic's name for these interfaces (it shells out to ipmitool; we speak the protocol)."""

    def __init__(self, sessions: Sessions | None = None) -> None:
        self._sessions = sessions or DEFAULT_SESSIONS

    def validate(self, access: bmc.BmcAccess) -> None:
        if access.address.type.http_transports:
            raise outcome.SpecError(
                "spec.bmc.address", f"scheme {access.address.scheme!r} is not an IPMI scheme")
        if not access.credentials.username:
            raise outcome.SpecError("spec.bmc.credentialsName", "the BMC username is empty")

    def _call(self, access: bmc.BmcAccess, operation: str, fn: Callable[[Any], T]) -> T:
        return self._sessions.call(access, operation, fn)


class IpmiPower(_Ipmi):
    def power_state(self, access: bmc.BmcAccess) -> bmc.PowerState:
        return self._call(access, "get power state", lambda c: parse.power_state(c.get_power()))

    def start_power_on(self, access: bmc.BmcAccess) -> None:
        self._call(access, "power on", lambda c: c.set_power("on"))

    def start_power_off(self, access: bmc.BmcAccess, *, mode: ports.RebootMode) -> None:
        state = "shutdown" if mode is ports.RebootMode.SOFT else "off"

        def run(c: Any) -> None:
            if parse.power_state(c.get_power()) is bmc.PowerState.OFF:
                return
            c.set_power(state)

        self._call(access, f"power off ({mode.value})", run)

    def start_reboot(self, access: bmc.BmcAccess, *, mode: ports.RebootMode) -> None:
        # IPMI has no graceful restart: "boot" is power on when off, hard reset when on.
        self._call(access, f"reboot ({mode.value})", lambda c: c.set_power("boot"))


class IpmiManagement(_Ipmi):
    def boot_setting(self, access: bmc.BmcAccess) -> bmc.BootSetting:
        return self._call(access, "get boot device",
                          lambda c: parse.boot_setting(c.get_bootdev()))

    def set_boot_device(self, access: bmc.BmcAccess, device: bmc.BootDevice, *,
                        persistence: bmc.Persistence) -> None:
        name = parse.DEVICE_NAMES.get(device)
        if name is None:
            raise bmc.UnsupportedCapability(access.address.address, f"set boot device {device}",
                                            capability=f"boot device {device.value}",
                                            implementation=self.name)

        def run(c: Any) -> None:
            current = parse.boot_setting(c.get_bootdev())
            uefi = current.mode is not bmc.BootMode.LEGACY
            c.set_bootdev(name, persist=persistence is bmc.Persistence.PERSISTENT,
                          uefiboot=uefi)

        self._call(access, f"set boot device {device.value}", run)

    def set_boot_mode(self, access: bmc.BmcAccess, mode: bmc.BootMode) -> None:
        def run(c: Any) -> None:
            current = parse.boot_setting(c.get_bootdev())
            if current.mode is mode:
                return
            c.set_bootdev(parse.DEVICE_NAMES.get(current.device, "default"),
                          persist=current.persistence is bmc.Persistence.PERSISTENT,
                          uefiboot=mode is bmc.BootMode.UEFI)

        self._call(access, f"set boot mode {mode.value}", run)


class IpmiInspect(_Ipmi):
    def inspect(self, access: bmc.BmcAccess) -> hwd.HardwareDetails:
        return self._call(access, "inspect hardware", lambda c: parse.hardware_details(
            c.get_inventory_of_component("System") or {}))


class IpmiFirmware(_Ipmi):
    """The BMC's firmware version from its FRU inventory; IPMI has no standard way to update
    firmware, so updates raise UnsupportedCapability (as Ironic's ipmi driver has no firmware
    interface)."""

    def components(self, access: bmc.BmcAccess) -> tuple[bmc.FirmwareComponent, ...]:
        return self._call(access, "get firmware components", lambda c: parse.firmware_components(
            c.get_inventory_of_component("System") or {}))

    def _unsupported(self, access: bmc.BmcAccess, operation: str) -> NoReturn:
        raise bmc.UnsupportedCapability(access.address.address, operation,
                                        capability="firmware", implementation="ipmi")

    def start_update(self, access: bmc.BmcAccess, component: str, image_url: str
                     ) -> bmc.UpdateTask:
        self._unsupported(access, f"update {component} firmware")

    def update_tasks(self, access: bmc.BmcAccess) -> tuple[bmc.UpdateTask, ...]:
        self._unsupported(access, "list firmware update tasks")
