"""Protocol conformance of every port's adapters (checked by mypy: one annotated assignment
each, STYLE 5), plus the recording fake's behaviour."""

from random import Random

from metalcubed.controllers import agent_client, lookup, memory
from metalcubed.controllers.bmc import unsupported
from metalcubed.controllers.bmc.ipmi import capabilities as ipmi
from metalcubed.controllers.bmc.redfish import capabilities as redfish
from metalcubed.core import agent, bmc, clock, memory_store, ports
from metalcubed.core.api import meta
from metalcubed.core.provisioning import engine, fixture, nodes
from metalcubed.core.testing import fakes
from metalcubed.simulators import hostmodel_bmc
from metalcubed.simulators.agent import emulator, inprocess
from metalcubed.simulators.agent import lookup as agent_lookup
from metalcubed.simulators.fleet import engine as fleet_engine

_clock: ports.Clock = clock.ManualClock()
_fixed: ports.Clock = clock.FixedClock()
_wall: ports.Clock = memory.WallClock()
_store: ports.Store = memory_store.MemoryStore(clock=_clock, rng=Random(0))
_locked: ports.Store = memory.LockedStore(memory_store.MemoryStore(clock=_clock))
_recorder: ports.EventRecorder = fakes.RecordingEventRecorder()


def test_recording_event_recorder_keeps_events_in_order() -> None:
    tick = clock.ManualClock()
    recorder = fakes.RecordingEventRecorder(tick)
    secret = meta.Secret(metadata=meta.ObjectMeta(name="s", namespace="n", uid="u1"))
    other = meta.Secret(metadata=meta.ObjectMeta(name="o", namespace="n"))
    recorder.record(secret, type=ports.EventType.NORMAL, reason="Registered", message="ok")
    tick.advance(5)
    recorder.record(other, type=ports.EventType.WARNING, reason="BMCError", message="down")
    assert recorder.reasons() == ["Registered", "BMCError"]
    assert recorder.reasons(secret.key) == ["Registered"]
    assert [e.reason for e in recorder.warnings()] == ["BMCError"]
    first = recorder.events[0]
    assert (first.kind, first.uid, first.at) == ("Secret", "u1", clock.EPOCH)
    recorder.clear()
    assert recorder.events == []


def test_manual_clock_moves_only_forward() -> None:
    tick = clock.ManualClock()
    assert tick.advance(1.5) == clock.EPOCH.replace(microsecond=500000, second=1)
    try:
        tick.advance(-1)
    except ValueError:
        return
    raise AssertionError("advance(-1) accepted")


# --- every adapter of the hardware ports (checked by mypy; the contract suites in this directory
# --- check their behaviour) ---------------------------------------------------------------------


def _provisioners(
    fixture_backend: fixture.FixtureBackend,
    fixture_provisioner: fixture.FixtureProvisioner,
    core_engine: engine.Engine,
    engine_provisioner: engine.EngineProvisioner,
) -> None:
    _f: ports.ProvisionerFactory = fixture_backend
    _fp: ports.Provisioner = fixture_provisioner
    _e: ports.ProvisionerFactory = core_engine
    _ep: ports.Provisioner = engine_provisioner


def _redfish(
    power: redfish.RedfishPower, management: redfish.RedfishManagement,
    media: redfish.RedfishVirtualMedia, inspect: redfish.RedfishInspect,
    bios: redfish.RedfishBios, firmware: redfish.RedfishFirmware, events: redfish.RedfishEvents,
) -> None:
    _p: bmc.Power = power
    _m: bmc.Management = management
    _b: bmc.Boot = media
    _i: bmc.Inspect = inspect
    _bi: bmc.Bios = bios
    _f: bmc.Firmware = firmware
    _e: bmc.Events = events


def _ipmi(power: ipmi.IpmiPower, management: ipmi.IpmiManagement, inspect: ipmi.IpmiInspect,
          firmware: ipmi.IpmiFirmware) -> None:
    _p: bmc.Power = power
    _m: bmc.Management = management
    _i: bmc.Inspect = inspect
    _f: bmc.Firmware = firmware


def _sim(
    power: hostmodel_bmc.SimPower, management: hostmodel_bmc.SimManagement,
    media: hostmodel_bmc.SimBoot, inspect: hostmodel_bmc.SimInspect,
    bios: hostmodel_bmc.SimBios, firmware: hostmodel_bmc.SimFirmware,
    events: hostmodel_bmc.SimEvents,
) -> None:
    _p: bmc.Power = power
    _m: bmc.Management = management
    _b: bmc.Boot = media
    _i: bmc.Inspect = inspect
    _bi: bmc.Bios = bios
    _f: bmc.Firmware = firmware
    _e: bmc.Events = events


def _fleet(power: fleet_engine.FleetPower, management: fleet_engine.FleetManagement,
           media: fleet_engine.FleetBoot, inspect: fleet_engine.FleetInspect,
           fleet_agent: fleet_engine.FleetAgent) -> None:
    _p: bmc.Power = power
    _m: bmc.Management = management
    _b: bmc.Boot = media
    _i: bmc.Inspect = inspect
    _a: agent.Agent = fleet_agent


def _unsupported(media: unsupported.UnsupportedBoot, inspect: unsupported.UnsupportedInspect,
                 bios: unsupported.UnsupportedBios, firmware: unsupported.UnsupportedFirmware,
                 events: unsupported.UnsupportedEvents) -> None:
    _b: bmc.Boot = media
    _i: bmc.Inspect = inspect
    _bi: bmc.Bios = bios
    _f: bmc.Firmware = firmware
    _e: bmc.Events = events


def _agents(http: agent_client.HttpAgent, in_process: inprocess.InProcessAgent) -> None:
    _h: agent.Agent = http
    _i: agent.Agent = in_process


def _node_tables(table: nodes.NodeTable, locked: lookup.LockedNodeTable,
                 over_http: agent_lookup.HttpConductor,
                 direct: agent_lookup.DirectConductor) -> None:
    _t: nodes.Nodes = table
    _l: nodes.Nodes = locked
    _h: emulator.Conductor = over_http
    _d: emulator.Conductor = direct
