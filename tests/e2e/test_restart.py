"""Restart safety of the provisioning engine, in-process and in virtual time.

The manager's node table (the engine's records, the agents' endpoints and tokens) lives in
memory: a restarted manager starts with an empty one and must rebuild what it needs from the
BareMetalHosts and the hardware. Here a "restart" drops the node table, the engine and the
reconciler and builds new ones over the same store, the same emulated servers and the same
BMCs (what a kill -9 and a new process do); the deploy agents then reach the new manager at
the same place (their conductor is the new table). Agents already running are not heard from
again: the new manager never handed them a token, so (as over HTTP, where it refuses their
heartbeats with 401) they are unknown to it. tests/kube/test_e2e_engine.py does the same with
a real kill -9 of `metalcubed manager` over HTTP.

What must hold:
- a host that reached `provisioned` before the restart is never imaged again;
- a host caught mid-deployment is rebooted into the ramdisk and finishes: it never waits for
  the ramdisk timeout (set to ten hours here; the virtual clock shows how long it took);
- deprovisioning after a restart still wipes the disk.

The rig is tests/unit/provisioning's (emulated servers, Sim BMCs, emulated agents, manual clock,
the real reconciler over a MemoryStore): deterministic, no sockets, no threads.
"""

import dataclasses
import random
from collections.abc import Callable

import pytest

from metalcubed.core import agent
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.core.provisioning import capacity, context, engine, nodes
from metalcubed.core.reconcilers import host as host_reconciler
from metalcubed.simulators import hostmodel, hostmodel_bmc
from tests.unit.provisioning.loop import Loop
from tests.unit.provisioning.test_with_reconciler import IMG, World

S = bmh.ProvisioningState
RAMDISK_TIMEOUT_S = 10 * 3600.0
SCHEMES = ("redfish-virtualmedia+http", "ipmi", "redfish+http", "ipmi")


def _config(world: World) -> context.EngineConfig:
    """The engine's settings, before and after a restart: the ramdisk timeout is ten hours, so
    a host that converges did not wait for it."""
    return dataclasses.replace(world.rig.engine.config, ramdisk_timeout_s=RAMDISK_TIMEOUT_S)


def restart(world: World) -> None:
    """kill -9 and a new manager: a new node table, engine and reconciler over the same store,
    hosts and BMCs; the new runtime lists every host and reconciles it (informer sync)."""
    rig = world.rig
    config = _config(world)
    table = type(rig.table)(clock=rig.clock)
    rig.table = table
    rig.emulator.conductor = type(rig.emulator.conductor)(table)
    rig.engine = engine.Engine(
        drivers=hostmodel_bmc.driver_for(rig.bmcs), agents=rig.agents, nodes_port=table,
        clock=rig.clock, busy_hosts=capacity.busy_hosts_in(world.store), config=config,
    )
    world.reconciler = host_reconciler.BareMetalHostReconciler(
        store=world.store, provisioner_factory=rig.engine, clock=rig.clock,
        events=world.events, rng=random.Random(7),
    )
    world.loop = Loop(world.reconciler, world.store, clock=rig.clock, max_delay_s=120.0)
    world.loop.add(h.key for h in world.store.list(bmh.BareMetalHost))


def _world(*, fast_track: bool = True) -> tuple[World, list[meta.ObjectKey]]:
    world = World()
    world.rig.engine.config = dataclasses.replace(_config(world), fast_track=fast_track)
    keys = [world.host(scheme) for scheme in SCHEMES]
    world.loop.run_until(lambda: world.all_in(keys, S.AVAILABLE))
    return world, keys


def _state(world: World, key: meta.ObjectKey) -> bmh.ProvisioningState:
    return world.loop.host(key).status.provisioning.state


def _writes(world: World) -> dict[str, int]:
    return {h.key.name: world.rig.emulator.disk(h.model).writes for h in world.rig.hosts}


def _ramdisk_boots(model: hostmodel.HostModel) -> int:
    return sum(1 for b in model.boots if b.device in (hostmodel.BootDevice.PXE,
                                                      hostmodel.BootDevice.CD))


def _stage(world: World, key: meta.ObjectKey) -> str:
    """Where a provisioning host's deployment stands, from its agent and the engine's record."""
    if _state(world, key) != S.PROVISIONING:
        return "other"
    model = next(h.model for h in world.rig.hosts if h.key == key)
    running = world.rig.emulator.current(model)
    latest = running.latest() if running is not None else None
    if latest is not None and latest.name == agent.CommandName.WRITE_IMAGE:
        return "image written"
    if running is not None:
        return "agent up"
    node = world.rig.table.get(nodes.node_id_for(key))
    if node is not None and node.wait is not None and node.wait.purpose == nodes.Purpose.DEPLOY:
        return "ramdisk booting"
    return "other"


def _run_to(world: World, goal: Callable[[], bool]) -> None:
    world.loop.run_until(goal)


STAGES = [
    # fast track (Metal3's default): the agent left up by inspection deploys the image
    (True, "agent up"), (True, "image written"),
    # without it: the engine boots the ramdisk for the deployment
    (False, "ramdisk booting"), (False, "agent up"), (False, "image written"),
]


@pytest.mark.parametrize(("fast_track", "wanted"), STAGES)
def test_restart_at_each_stage_of_a_deployment_never_reimages_a_provisioned_host(
    fast_track: bool, wanted: str,
) -> None:
    world, keys = _world(fast_track=fast_track)
    first, rest = keys[0], keys[1:]
    world.edit(first, image=IMG)
    _run_to(world, lambda: world.all_in([first], S.PROVISIONED))
    for key in rest:
        world.edit(key, image=IMG)
    seen: dict[str, str] = {}

    def reached() -> bool:
        for key in rest:
            seen[key.name] = _stage(world, key)
        return wanted in seen.values()

    _run_to(world, reached)
    states = {k.name: _state(world, k) for k in keys}
    assert states[first.name] == S.PROVISIONED
    caught = [k for k in rest if seen[k.name] == wanted]
    assert all(states[k.name] == S.PROVISIONING for k in caught), (wanted, states)
    writes_at_kill = _writes(world)
    boots_at_kill = {h.key.name: _ramdisk_boots(h.model) for h in world.rig.hosts}

    restart(world)
    restarted_at = world.rig.clock.now()
    _run_to(world, lambda: world.all_in(keys, S.PROVISIONED))
    took_s = (world.rig.clock.now() - restarted_at).total_seconds()

    assert took_s < RAMDISK_TIMEOUT_S / 10, f"{wanted}: converged only after {took_s} s"
    writes = _writes(world)
    assert writes[first.name] == writes_at_kill[first.name] == 1, (wanted, writes)
    for key in caught:
        model = next(h.model for h in world.rig.hosts if h.key == key)
        # The agent the dead manager talked to is unknown now: a new ramdisk boot, a write.
        assert _ramdisk_boots(model) > boots_at_kill[key.name], (wanted, key.name)
        assert writes[key.name] == writes_at_kill[key.name] + 1, (wanted, writes)
    for host in world.rig.hosts:
        disk = world.rig.emulator.disk(host.model)
        assert disk.image_url == IMG.url and disk.checksum == IMG.checksum
    assert not [h for h in world.store.list(bmh.BareMetalHost) if h.status.error_type]


def test_provisioned_hosts_are_adopted_after_a_restart_and_not_touched() -> None:
    world, keys = _world()
    for key in keys:
        world.edit(key, image=IMG)
    _run_to(world, lambda: world.all_in(keys, S.PROVISIONED))
    writes, boots = _writes(world), [len(h.model.boots) for h in world.rig.hosts]
    restart(world)
    _run_to(world, lambda: all(
        (n := world.rig.table.get(nodes.node_id_for(k))) is not None and n.deployed is not None
        for k in keys))
    assert _writes(world) == writes
    assert [len(h.model.boots) for h in world.rig.hosts] == boots, "a host was rebooted"
    assert world.all_in(keys, S.PROVISIONED)


def test_deprovisioning_after_a_restart_still_cleans() -> None:
    world, keys = _world()
    for key in keys:
        world.edit(key, image=IMG)
    _run_to(world, lambda: world.all_in(keys, S.PROVISIONED))
    for key in keys:  # a provisioned pool kept powered off
        world.edit(key, online=False)
    _run_to(world, lambda: all(h.model.power is hostmodel.Power.OFF for h in world.rig.hosts)
            and all(not world.loop.host(k).status.powered_on for k in keys))
    restart(world)
    for key in keys:
        world.edit(key, image=None)
    _run_to(world, lambda: world.all_in(keys, S.AVAILABLE))
    for host in world.rig.hosts:
        disk = world.rig.emulator.disk(host.model)
        assert disk.wipes == 1 and disk.image_url == "", (host.key.name, disk)


def test_restart_mid_cleaning_finishes_the_deprovisioning() -> None:
    world, keys = _world()
    for key in keys:
        world.edit(key, image=IMG)
    _run_to(world, lambda: world.all_in(keys, S.PROVISIONED))
    for key in keys:
        world.edit(key, image=None)
    _run_to(world, lambda: any(_state(world, k) == S.DEPROVISIONING for k in keys))
    restart(world)
    restarted_at = world.rig.clock.now()
    _run_to(world, lambda: world.all_in(keys, S.AVAILABLE))
    assert (world.rig.clock.now() - restarted_at).total_seconds() < RAMDISK_TIMEOUT_S / 10
    for host in world.rig.hosts:
        disk = world.rig.emulator.disk(host.model)
        assert disk.wipes >= 1 and disk.image_url == "", (host.key.name, disk)
        assert disk.writes == 1


def test_a_new_record_takes_the_deployed_image_from_the_hosts_status() -> None:
    """What registration rebuilds after a restart: the image status.provisioning names."""
    world, keys = _world()
    key = keys[0]
    world.edit(key, image=IMG)
    _run_to(world, lambda: _state(world, key) == S.PROVISIONED)
    restart(world)
    assert world.rig.table.get(nodes.node_id_for(key)) is None
    world.reconciler.reconcile(key)  # registration, then adopt: no BMC write, no agent
    node = world.rig.table.get(nodes.node_id_for(key))
    assert node is not None and node.deployed is not None
    assert (node.deployed.image_url, node.deployed.checksum) == (IMG.url, IMG.checksum)
    assert node.deployed.adopted and node.wait is None
    # A host that never got an image has none recorded.
    other = keys[1]
    world.reconciler.reconcile(other)
    found = world.rig.table.get(nodes.node_id_for(other))
    assert found is not None and found.deployed is None
