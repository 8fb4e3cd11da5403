"""The emulated server: power timing, boot override consumption, BIOS staging."""

import pytest

from metalcubed.simulators import hostmodel


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_power_on_takes_the_configured_time_and_fires_boot_hook() -> None:
    clock = FakeClock()
    host = hostmodel.HostModel(name="h", clock=clock,
                               timing=hostmodel.PowerTiming(power_on_s=1000.0))
    booted: list[hostmodel.BootEvent] = []
    host.on_boot(booted.append)
    host.set_boot_device(hostmodel.BootDevice.PXE, persistent=False)
    host.power_on()
    assert host.power is hostmodel.Power.POWERING_ON
    clock.now += 1000.0
    assert host.power is hostmodel.Power.ON
    assert [e.device for e in booted] == [hostmodel.BootDevice.PXE]
    assert host.boot_override() == (hostmodel.BootDevice.NONE, False)  # once: consumed
    host.close()


def test_boot_from_cd_reports_the_media_url() -> None:
    host = hostmodel.HostModel(name="h")
    host.insert_media(hostmodel.MediaSlot.CD, "http://x/ramdisk.iso")
    host.set_boot_device(hostmodel.BootDevice.CD, persistent=True)
    host.power_on()
    assert host.boots[-1].media_url == "http://x/ramdisk.iso"
    assert host.boot_override() == (hostmodel.BootDevice.CD, True)


def test_bios_changes_are_staged_until_boot() -> None:
    host = hostmodel.HostModel(name="h")
    host.stage_bios({"ProcVirtualization": "Disabled"})
    assert host.bios()["ProcVirtualization"] == "Enabled"
    host.power_on()
    assert host.bios()["ProcVirtualization"] == "Disabled"
    assert host.bios_pending() == {}


@pytest.mark.parametrize("changes", [{"Nope": 1}, {"PxeRetryCount": 99},
                                     {"ProcVirtualization": "Maybe"},
                                     {"SystemServiceTag": "x"}],
                         ids=["unknown", "out-of-range", "not-allowed", "read-only"])
def test_bad_bios_changes_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(hostmodel.HostModelError):
        hostmodel.HostModel(name="h").stage_bios(changes)


def test_conflict_window_after_power_off() -> None:
    clock = FakeClock()
    host = hostmodel.HostModel(name="h", clock=clock, power=hostmodel.Power.ON,
                               faults=hostmodel.Faults(conflict_after_power_off_s=5.0))
    host.power_off(hard=True)
    assert host.in_conflict_window()
    clock.now += 5.0
    assert not host.in_conflict_window()


def test_ignored_soft_power_off() -> None:
    host = hostmodel.HostModel(name="h", power=hostmodel.Power.ON,
                               faults=hostmodel.Faults(ignore_soft_power_off=True))
    host.power_off(hard=False)
    assert host.power is hostmodel.Power.ON
    host.power_off(hard=True)
    assert host.power is hostmodel.Power.OFF
