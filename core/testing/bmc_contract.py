"""The BMC capability contract: one suite every `core.bmc` implementation must pass unchanged.

STYLE 5 and 6: each capability (Power, Management, Boot, Inspect, Bios, Firmware, Events) is a
Protocol with several implementations (Redfish over sushy, IPMI over pyghmi, the Sim one over
the host model, the fleet model's). The engine only works the same over all of them if they
behave the same where the Protocol says so; this module is that promise as executable checks,
written against core/bmc.py only:

- power: an off host reads OFF; start_power_on reaches ON, and again is a no-op; hard and soft
  power off reach OFF, and again is a no-op; a reboot of an off host powers it on;
- management: a boot override reads back as set (device and once/persistent), setting it again
  changes nothing, a one-time override is used up by the next boot; a boot mode the BMC reports
  is the one set;
- boot (virtual media): the CD starts empty, an insert reads back with its URL, a second insert
  replaces it, an eject empties it and a second eject is a no-op;
- inspect, bios, firmware, events: reads are stable and change nothing; staged BIOS changes read
  back as pending or current; a subscription reads back and unsubscribing twice is fine;
- firmware updates: an update is a task that runs to COMPLETED and the component then reports
  the image's version; asking again while it runs returns the same task; a BMC without
  firmware updates (IPMI) raises `UnsupportedCapability` from start_update and update_tasks;
- raid: controllers list RAID levels and drives; a volume created reads back (level, drives,
  name), creating it again is a no-op, a level the controller lacks is `BmcRejected`, deleting
  twice is fine; hardware without RAID (`NoRaid`) raises `UnsupportedCapability`;
- errors: wrong credentials are `BmcAuthFailed`, a BMC that does not answer is `BmcUnreachable`,
  both naming the address and never the password;
- a capability the implementation does not support (`Unsupported<X>`) raises
  `UnsupportedCapability` from every method (STYLE 6: unsupported is not simulated). Every
  capability test checks exactly that for an implementation that declares the capability
  unsupported, so no test passes without asserting something.

Hardware time: power transitions take time (an emulator's timer, the fleet model's simpy
events). Every check that waits for one goes through `harness.wait_until(predicate, what)`:
the implementation's runner moves its virtual clock, or polls a real emulator with a bounded
loop, and fails with an AssertionError naming `what`.

Use it from a test module (pytest collects the inherited `test_*` methods):

    class TestBmcContract(bmc_contract.BmcContract):
        @pytest.fixture(params=["redfish", "ipmi", "sim"])
        def harness(self, request) -> bmc_contract.BmcHarness: ...

This module imports no test framework, so core/ stays free of it.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from metalcubed.core import bmc, ports
from metalcubed.core.testing.store_contract import raises

WaitUntil = Callable[[Callable[[], bool], str], None]
"""wait_until(predicate, what): return once predicate() holds (moving the implementation's
hardware time, or polling a real emulator within a bound); AssertionError naming `what` when it
does not."""

C = bmc.Capability


@dataclass(kw_only=True)
class BmcHarness:
    """What an implementation's fixture hands the suite: one BMC of a host that is off."""

    driver: bmc.Driver
    """The implementation of every capability (Unsupported<X> where it has none)."""
    access: bmc.BmcAccess
    """A BMC that answers, with the right credentials; its host is off, with no boot override
    and no virtual media."""
    supported: frozenset[bmc.Capability]
    """The capabilities the implementation claims; for the others the suite expects
    `UnsupportedCapability`."""
    wait_until: WaitUntil
    not_modelled: Callable[[str], NoReturn]
    """Called (and never returns) when a check needs something the implementation does not
    model, with the reason; a runner reports it as a skip, never as a pass."""
    wrong_password: bmc.BmcAccess | None = None
    """The same BMC with a wrong password; None when the implementation checks no credentials."""
    unreachable: tuple[bmc.Driver, bmc.BmcAccess] | None = None
    """A driver and an address where no BMC answers (a closed loopback port, a simulated BMC
    that never replies); None when the implementation cannot model one."""
    media_urls: tuple[str, str] = ("", "")
    """Two images the BMC can fetch, for virtual media."""
    bios_change: Mapping[str, bmc.BiosValue] | None = None
    """A valid change of BIOS attributes (values different from the current ones)."""
    boot_devices: frozenset[bmc.BootDevice] = frozenset(bmc.BootDevice)
    """The boot devices the BMC can boot from (IPMI: no UEFI HTTP; the fleet model: PXE, CD
    and disk only)."""
    media_devices: frozenset[bmc.MediaDevice] = frozenset(bmc.MediaDevice)
    """The virtual media slots the BMC models (the fleet model: the CD only)."""
    boots: Callable[[], int] | None = None
    """How many times the host has booted so far (hardware-side), when the harness can tell;
    used to check that an idempotent write did not boot the host again."""
    firmware_updates: bool = True
    """False: the implementation reads firmware versions but cannot update them (IPMI), so
    start_update and update_tasks must raise UnsupportedCapability."""
    firmware_image: tuple[str, str, str] | None = None
    """(component, image URL, the version it holds) the BMC can flash; None when the harness
    serves no image (the update checks then report "not modelled")."""

    def supports(self, capability: bmc.Capability) -> bool:
        return capability in self.supported


# --- helpers ---------------------------------------------------------------------------------


def _calls(h: BmcHarness, capability: bmc.Capability) -> list[tuple[str, Callable[[], Any]]]:
    """Every method of `capability` with valid arguments (for the unsupported check)."""
    d, a = h.driver, h.access
    url = h.media_urls[0] or "http://127.0.0.1:1/none.iso"
    cd = bmc.MediaDevice.CD
    table: dict[bmc.Capability, list[tuple[str, Callable[[], Any]]]] = {
        C.POWER: [
            ("power_state", lambda: d.power.power_state(a)),
            ("start_power_on", lambda: d.power.start_power_on(a)),
            ("start_power_off", lambda: d.power.start_power_off(a, mode=ports.RebootMode.HARD)),
            ("start_reboot", lambda: d.power.start_reboot(a, mode=ports.RebootMode.HARD)),
        ],
        C.MANAGEMENT: [
            ("boot_setting", lambda: d.management.boot_setting(a)),
            ("set_boot_device", lambda: d.management.set_boot_device(
                a, bmc.BootDevice.PXE, persistence=bmc.Persistence.ONCE)),
            ("set_boot_mode", lambda: d.management.set_boot_mode(a, bmc.BootMode.UEFI)),
        ],
        C.BOOT: [
            ("media_state", lambda: d.boot.media_state(a, device=cd)),
            ("insert_media", lambda: d.boot.insert_media(a, url, device=cd)),
            ("eject_media", lambda: d.boot.eject_media(a, device=cd)),
        ],
        C.INSPECT: [("inspect", lambda: d.inspect.inspect(a))],
        C.BIOS: [
            ("settings", lambda: d.bios.settings(a)),
            ("registry", lambda: d.bios.registry(a)),
            ("apply_settings", lambda: d.bios.apply_settings(a, {"ProcVirtualization": "Enabled"})),
        ],
        C.FIRMWARE: [
            ("components", lambda: d.firmware.components(a)),
            ("start_update", lambda: d.firmware.start_update(a, "bios", url)),
            ("update_tasks", lambda: d.firmware.update_tasks(a)),
        ],
        C.RAID: [
            ("controllers", lambda: d.raid.controllers(a)),
            ("volumes", lambda: d.raid.volumes(a)),
            ("create_volume", lambda: d.raid.create_volume(a, bmc.VolumeRequest(
                name="v", level=bmc.RaidLevel.RAID0, controller="1", drives=("d",)))),
            ("delete_volume", lambda: d.raid.delete_volume(a, "1", "v")),
        ],
        C.EVENTS: [
            ("subscriptions", lambda: d.events.subscriptions(a)),
            ("subscribe", lambda: d.events.subscribe(a, "https://hooks.example/metal3")),
            ("unsubscribe", lambda: d.events.unsubscribe(a, "1")),
        ],
    }
    return table[capability]


def check_unsupported(h: BmcHarness, capability: bmc.Capability) -> None:
    """Every method of an unsupported capability raises UnsupportedCapability naming it."""
    for method, call in _calls(h, capability):
        with raises(bmc.UnsupportedCapability) as caught:
            call()
        assert caught, method
        assert h.access.display in str(caught[0]), method


def _unsupported(h: BmcHarness, capability: bmc.Capability) -> bool:
    """True (after checking UnsupportedCapability) when the implementation lacks it."""
    if h.supports(capability):
        return False
    check_unsupported(h, capability)
    return True


def _power(h: BmcHarness) -> bmc.PowerState:
    return h.driver.power.power_state(h.access)


def _wait_power(h: BmcHarness, state: bmc.PowerState, what: str) -> None:
    h.wait_until(lambda: _power(h) == state, f"{what}: power state {state.value}")


def _power_on(h: BmcHarness) -> None:
    h.driver.power.start_power_on(h.access)
    _wait_power(h, bmc.PowerState.ON, "power on")


class BmcContract:
    """The contract as pytest test methods; a subclass provides the `harness` fixture."""

    # --- every capability ------------------------------------------------------------------------

    def test_validate_accepts_a_good_access_without_io(self, harness: BmcHarness) -> None:
        h = harness
        h.driver.validate(h.access)
        if h.unreachable is not None:
            driver, access = h.unreachable
            driver.validate(access)  # no I/O: an address nobody answers is valid

    # --- power -----------------------------------------------------------------------------------

    def test_an_off_host_reads_off(self, harness: BmcHarness) -> None:
        if _unsupported(harness, C.POWER):
            return
        assert _power(harness) == bmc.PowerState.OFF

    def test_power_on_reaches_on_and_again_is_a_no_op(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.POWER):
            return
        _power_on(h)
        boots = h.boots() if h.boots is not None else None
        h.driver.power.start_power_on(h.access)
        assert _power(h) == bmc.PowerState.ON
        if boots is not None and h.boots is not None:
            assert h.boots() == boots, "powering on a host that is on booted it again"

    def test_hard_power_off_reaches_off_and_again_is_a_no_op(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.POWER):
            return
        _power_on(h)
        h.driver.power.start_power_off(h.access, mode=ports.RebootMode.HARD)
        _wait_power(h, bmc.PowerState.OFF, "hard power off")
        h.driver.power.start_power_off(h.access, mode=ports.RebootMode.HARD)
        assert _power(h) == bmc.PowerState.OFF

    def test_soft_power_off_reaches_off(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.POWER):
            return
        _power_on(h)
        h.driver.power.start_power_off(h.access, mode=ports.RebootMode.SOFT)
        _wait_power(h, bmc.PowerState.OFF, "soft power off")

    def test_reboot_of_an_off_host_powers_it_on(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.POWER):
            return
        h.driver.power.start_reboot(h.access, mode=ports.RebootMode.HARD)
        _wait_power(h, bmc.PowerState.ON, "reboot of an off host")

    def test_reboot_of_an_on_host_boots_it_again(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.POWER):
            return
        if h.boots is None:
            h.not_modelled("the harness cannot count the host's boots")
        _power_on(h)
        boots = h.boots()
        h.driver.power.start_reboot(h.access, mode=ports.RebootMode.HARD)
        h.wait_until(lambda: h.boots is not None and h.boots() > boots and
                     _power(h) == bmc.PowerState.ON, "reboot: a new boot, then on")

    # --- management -------------------------------------------------------------------------------

    def test_boot_override_reads_back_as_set(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.MANAGEMENT):
            return
        m = h.driver.management
        devices = [d for d in bmc.BootDevice if d in h.boot_devices and d != bmc.BootDevice.NONE]
        for i, device in enumerate(devices):
            persistence = (bmc.Persistence.ONCE, bmc.Persistence.PERSISTENT)[i % 2]
            m.set_boot_device(h.access, device, persistence=persistence)
            got = m.boot_setting(h.access)
            assert (got.device, got.persistence) == (device, persistence)
            m.set_boot_device(h.access, device, persistence=persistence)  # idempotent
            again = m.boot_setting(h.access)
            assert (again.device, again.persistence) == (device, persistence)

    def test_boot_device_none_clears_the_override(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.MANAGEMENT):
            return
        if bmc.BootDevice.NONE not in h.boot_devices:
            h.not_modelled("a BMC without a boot override")
        m = h.driver.management
        m.set_boot_device(h.access, bmc.BootDevice.PXE, persistence=bmc.Persistence.PERSISTENT)
        m.set_boot_device(h.access, bmc.BootDevice.NONE, persistence=bmc.Persistence.PERSISTENT)
        assert m.boot_setting(h.access).device == bmc.BootDevice.NONE

    def test_a_one_time_override_is_used_up_by_the_next_boot(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.MANAGEMENT):
            return
        m = h.driver.management
        m.set_boot_device(h.access, bmc.BootDevice.PXE, persistence=bmc.Persistence.ONCE)
        _power_on(h)
        # What reads back afterwards differs (Redfish: no override; the fleet model: the
        # persistent device underneath); only that PXE is gone is promised.
        h.wait_until(lambda: m.boot_setting(h.access).device != bmc.BootDevice.PXE,
                     "the one-time PXE override used up by the boot")

    def test_boot_mode_reads_back_as_set(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.MANAGEMENT):
            return
        m = h.driver.management
        for mode in (bmc.BootMode.LEGACY, bmc.BootMode.UEFI):
            m.set_boot_mode(h.access, mode)
            m.set_boot_mode(h.access, mode)  # idempotent
            reported = m.boot_setting(h.access).mode
            assert reported in (mode, None), f"set {mode.value}, the BMC reports {reported}"

    # --- boot (virtual media) ---------------------------------------------------------------------

    def test_virtual_cd_starts_empty(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.BOOT):
            return
        state = h.driver.boot.media_state(h.access, device=bmc.MediaDevice.CD)
        assert (state.device, state.inserted, state.image_url) == (bmc.MediaDevice.CD, False, "")

    def test_insert_replace_and_eject_media(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.BOOT):
            return
        boot, cd = h.driver.boot, bmc.MediaDevice.CD
        first, second = h.media_urls
        assert first and second, "the harness names two images for a BMC with virtual media"
        boot.insert_media(h.access, first, device=cd)
        got = boot.media_state(h.access, device=cd)
        assert (got.inserted, got.image_url) == (True, first)
        boot.insert_media(h.access, second, device=cd)
        got = boot.media_state(h.access, device=cd)
        assert (got.inserted, got.image_url) == (True, second)
        boot.eject_media(h.access, device=cd)
        got = boot.media_state(h.access, device=cd)
        assert (got.inserted, got.image_url) == (False, "")
        boot.eject_media(h.access, device=cd)  # empty already: a no-op
        assert not boot.media_state(h.access, device=cd).inserted

    def test_usb_slot_insert_and_eject(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.BOOT):
            return
        if bmc.MediaDevice.USB not in h.media_devices:
            h.not_modelled("a USB virtual media slot")
        boot, usb = h.driver.boot, bmc.MediaDevice.USB
        url = h.media_urls[0]
        boot.insert_media(h.access, url, device=usb)
        got = boot.media_state(h.access, device=usb)
        assert (got.device, got.inserted, got.image_url) == (usb, True, url)
        assert not boot.media_state(h.access, device=bmc.MediaDevice.CD).inserted
        boot.eject_media(h.access, device=usb)
        assert not boot.media_state(h.access, device=usb).inserted

    # --- inspect ----------------------------------------------------------------------------------

    def test_inspect_is_a_stable_read(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.INSPECT):
            return
        first = h.driver.inspect.inspect(h.access)
        assert first == h.driver.inspect.inspect(h.access)
        assert _power(h) == bmc.PowerState.OFF, "inspecting out of band powered the host on"

    # --- bios -------------------------------------------------------------------------------------

    def test_bios_settings_and_registry_agree(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.BIOS):
            return
        settings = h.driver.bios.settings(h.access)
        registry = h.driver.bios.registry(h.access)
        assert settings.current, "a BMC with BIOS management reports current attributes"
        for name, schema in registry.items():
            assert schema.name == name

    def test_applied_bios_changes_read_back_staged_or_current(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.BIOS):
            return
        change = h.bios_change
        assert change, "the harness names a valid BIOS change"
        bios = h.driver.bios
        before = bios.settings(h.access)
        assert any(before.current.get(k) != v for k, v in change.items())
        bios.apply_settings(h.access, change)
        bios.apply_settings(h.access, change)  # idempotent
        after = bios.settings(h.access)
        for name, value in change.items():
            assert value in (after.pending.get(name), after.current.get(name)), name

    # --- firmware ---------------------------------------------------------------------------------

    def test_firmware_components_are_a_stable_read(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.FIRMWARE):
            return
        components = h.driver.firmware.components(h.access)
        assert components, "a BMC with firmware inventory reports at least one component"
        assert all(c.component and c.version for c in components)
        assert components == h.driver.firmware.components(h.access)

    def test_firmware_update_is_a_task_that_applies_the_version(self, harness: BmcHarness
                                                                  ) -> None:
        h = harness
        if _unsupported(h, C.FIRMWARE):
            return
        fw = h.driver.firmware
        if not h.firmware_updates:
            calls: list[tuple[str, Callable[[], Any]]] = [
                ("start_update", lambda: fw.start_update(
                    h.access, "bios", "http://127.0.0.1:1/bios-9.fwimg")),
                ("update_tasks", lambda: fw.update_tasks(h.access))]
            for method, call in calls:
                with raises(bmc.UnsupportedCapability) as caught:
                    call()
                assert caught, method
            return
        if h.firmware_image is None:
            h.not_modelled("the harness serves no firmware image")
        component, url, version = h.firmware_image
        before = {c.component: c.version for c in fw.components(h.access)}
        assert before.get(component) not in (None, version), "pick a version not installed"
        task = fw.start_update(h.access, component, url)
        assert (task.component, task.image_url) == (component, url)
        assert task.state in (bmc.TaskState.RUNNING, bmc.TaskState.COMPLETED), task
        if task.state is bmc.TaskState.RUNNING:
            again = fw.start_update(h.access, component, url)
            assert again.id == task.id, "a second request while it runs started another task"

        def done() -> bool:
            mine = [t for t in fw.update_tasks(h.access) if t.id == task.id]
            return bool(mine) and mine[0].state is not bmc.TaskState.RUNNING

        h.wait_until(done, "the firmware update task ends")
        final = next(t for t in fw.update_tasks(h.access) if t.id == task.id)
        assert final.state is bmc.TaskState.COMPLETED, final.message
        h.wait_until(lambda: {c.component: c.version for c in fw.components(h.access)}
                     .get(component) == version, f"{component} reports {version}")

    # --- raid -------------------------------------------------------------------------------------

    def test_raid_volume_create_read_and_delete(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.RAID):
            return
        raid = h.driver.raid
        controllers = raid.controllers(h.access)
        assert controllers, "a BMC with RAID lists at least one controller"
        ctrl = controllers[0]
        assert ctrl.raid_levels and ctrl.drives
        assert not raid.volumes(h.access), "the harness host starts without volumes"
        level = bmc.RaidLevel.RAID0 if bmc.RaidLevel.RAID0 in ctrl.raid_levels else min(
            ctrl.raid_levels, key=lambda lv: bmc.RAID_MIN_DRIVES[lv])
        drives = tuple(d.id for d in ctrl.drives[:bmc.RAID_MIN_DRIVES[level]])
        request = bmc.VolumeRequest(name="contract-vol", level=level, controller=ctrl.id,
                                    drives=drives)
        raid.create_volume(h.access, request)
        raid.create_volume(h.access, request)  # exists by name: a no-op
        volumes = raid.volumes(h.access)
        assert len(volumes) == 1, volumes
        vol = volumes[0]
        assert (vol.name, vol.level, vol.controller, set(vol.drives)) == (
            "contract-vol", level, ctrl.id, set(drives))
        assert vol.size_bytes > 0
        raid.delete_volume(h.access, ctrl.id, vol.id)
        raid.delete_volume(h.access, ctrl.id, vol.id)  # gone already: a no-op
        assert not raid.volumes(h.access)

    def test_raid_level_the_controller_lacks_is_rejected(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.RAID):
            return
        ctrl = h.driver.raid.controllers(h.access)[0]
        missing = [lv for lv in bmc.RaidLevel if lv not in ctrl.raid_levels]
        if not missing:
            h.not_modelled("a controller lacking a RAID level")
        drives = tuple(d.id for d in ctrl.drives)
        with raises(bmc.BmcRejected) as caught:
            h.driver.raid.create_volume(h.access, bmc.VolumeRequest(
                name="bad", level=missing[0], controller=ctrl.id, drives=drives))
        assert caught
        assert not h.driver.raid.volumes(h.access)

    # --- events -----------------------------------------------------------------------------------

    def test_subscribe_list_and_unsubscribe(self, harness: BmcHarness) -> None:
        h = harness
        if _unsupported(h, C.EVENTS):
            return
        events = h.driver.events
        sub = events.subscribe(h.access, "https://hooks.example/metal3", context="ns/host")
        assert sub.id and sub.destination == "https://hooks.example/metal3"
        assert sub in events.subscriptions(h.access)
        events.unsubscribe(h.access, sub.id)
        events.unsubscribe(h.access, sub.id)  # already gone: a no-op
        assert sub.id not in {s.id for s in events.subscriptions(h.access)}

    # --- errors -----------------------------------------------------------------------------------

    def test_wrong_password_is_auth_failed_naming_the_address(self, harness: BmcHarness) -> None:
        h = harness
        if h.wrong_password is None:
            h.not_modelled("the implementation checks no credentials")
        with raises(bmc.BmcAuthFailed) as caught:
            h.driver.power.power_state(h.wrong_password)
        message = str(caught[0])
        assert h.wrong_password.display in message
        assert h.wrong_password.credentials.password not in message

    def test_a_bmc_that_does_not_answer_is_unreachable(self, harness: BmcHarness) -> None:
        h = harness
        if h.unreachable is None:
            h.not_modelled("the implementation has no address where nothing answers")
        driver, access = h.unreachable
        with raises(bmc.BmcUnreachable) as caught:
            driver.power.power_state(access)
        assert caught[0].operation and access.display in str(caught[0])
