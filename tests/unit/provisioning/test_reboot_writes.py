"""What a client watching a host sees during a reboot: every write of the BareMetalHost, in
order, from the memory store's watch, with the engine's soft power off (asynchronous: the host
is seen off on a later pass) in virtual time.

Upstream's manageHostPower writes an observed power change on a pass of its own before
anything else; so a client never sees the reboot annotation gone (or servicing start) while
the host still reads as on. The e2e test of servicing waits on exactly that.
"""

from dataclasses import dataclass

from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import hostfirmwaresettings as hfs_api

from . import test_servicing as servicing

OS = bmh.OperationalStatus
REBOOT = bmh.REBOOT_ANNOTATION_PREFIX


@dataclass(frozen=True)
class Seen:
    annotated: bool
    powered_on: bool
    status: OS


def _record(store: ports.Store) -> list[Seen]:
    seen: list[Seen] = []

    def on(event: ports.WatchEvent[bmh.BareMetalHost]) -> None:
        host = event.object
        seen.append(Seen(REBOOT in host.metadata.annotations, host.status.powered_on,
                         host.status.operational_status))

    store.watch(bmh.BareMetalHost, on, resource_version=store.list(bmh.BareMetalHost)[0]
                .metadata.resource_version)
    return seen


def _show(writes: list[Seen]) -> str:
    """`annotation/power/status` per write, for a failure's message."""
    return " ".join(f"{'R' if s.annotated else '-'}/{'on' if s.powered_on else 'off'}/"
                    f"{s.status.value}" for s in writes)


def _after_annotation(seen: list[Seen]) -> list[Seen]:
    first = next(i for i, s in enumerate(seen) if s.annotated)
    return seen[first:]


def test_a_plain_reboot_shows_the_host_off_before_the_annotation_goes() -> None:
    w, _, key = servicing._world()
    seen = _record(w.store)
    servicing._reboot(w, key)
    w.loop.run_until(lambda: servicing._settled(w, key))
    writes = _after_annotation(seen)
    gone = next(i for i, s in enumerate(writes) if not s.annotated)
    assert not any(s.powered_on for s in writes[gone - 1:gone + 1]), _show(writes)
    assert writes[-1] == Seen(False, True, OS.OK), _show(writes)


def test_a_serviced_reboot_shows_off_then_servicing_then_on() -> None:
    w, _, key = servicing._world()
    servicing._policy(w, key)
    servicing._want(w, key, {"ProcVirtualization": "Disabled"})
    w.loop.run_until(lambda: hfs_api.CHANGE_DETECTED in {
        c.type for c in servicing._hfs(w, key).status.conditions if c.status == "True"})
    seen = _record(w.store)
    servicing._reboot(w, key)
    w.loop.run_until(lambda: servicing._settled(w, key)
                     and any(s.status == OS.SERVICING for s in seen))
    writes = _after_annotation(seen)
    servicing_from = next(i for i, s in enumerate(writes) if s.status == OS.SERVICING)
    gone = next(i for i, s in enumerate(writes) if not s.annotated)
    # Off is on record before the annotation goes and before servicing starts; nothing reads
    # "annotation gone, on, OK" until servicing is over (the engine may power the host on
    # while servicing, as Ironic does).
    assert not writes[gone - 1].powered_on and not writes[gone].powered_on, _show(writes)
    assert gone <= servicing_from, _show(writes)
    done = [i for i, s in enumerate(writes) if s == Seen(False, True, OS.OK)]
    assert done and done[0] > servicing_from and done[-1] == len(writes) - 1, _show(writes)
