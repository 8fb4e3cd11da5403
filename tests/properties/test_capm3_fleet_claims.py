"""Clusters over hosts in the fleet model, with the controllers restarting at random.

Issue 11's safety properties, checked on the fleet (the CAPM3 and IPAM reconcilers that ship,
through the fleet runtime, with Cluster API core modelled): N machines in one or two clusters
over M hosts (each cluster with an IPPool of 5 addresses: a sixth Machine waits for a freed
one), K workers per controller, the CAPM3, IPAM and Cluster API managers restarting at
random moments (queues lost, passes in flight not acted on, every object listed again), a
scale change, then every cluster deleted. Whatever the interleaving:
- never a host with two consumers, never a Metal3Machine consuming two hosts, never an IP
  held twice (the ClusterWorld's checks on every write);
- nothing left after deletion: no Machine, Metal3Machine, claim or address, every host
  released (no consumerRef, no cluster label) and back to available.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metalcubed.core import controllerset
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, ipam
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.simulators.fleet import capicore, scenario, simulation

SAFETY = ("host-two-consumers", "machine-two-hosts", "ip-two-claims", "leaked-after-deletion")


def _scenario(hosts: int, clusters: int, replicas: int, scaled: int, workers: int) -> str:
    return f"""
name: fleet-claims
time_limit: 16h
controller:
  concurrency: {workers}
groups:
  - {{name: vm, count: {hosts}, profile: generic, bmc: redfish-virtualmedia}}
images:
  os:
    url: http://images.example.com/os.raw
    checksum: http://images.example.com/os.raw.sha256sum
    size: 1GiB
workload:
  - {{action: enroll, at: 0s}}
clusters:
  count: {clusters}
  replicas: {replicas}
  image: os
  ipam: {{network: 10.100.0.0/16, prefix: 28}}
  capi: {{concurrency: {workers}}}
  steps:
    - {{name: rescale, action: scale, at: 50m, replicas: {scaled}}}
    - {{name: teardown, action: delete, at: 3h}}
"""


def _restart_all(sim: simulation.Simulation, names: set[str]) -> None:
    for controller in sim.controllers:
        if controller.name in names:
            keys = [obj.key for obj in sim.store.list(controller.wiring.kind)]
            controller.restart(keys)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hosts=st.integers(1, 8),
    clusters=st.integers(1, 2),
    replicas=st.integers(0, 6),
    scaled=st.integers(0, 6),
    workers=st.integers(1, 4),
    restarts=st.lists(st.floats(0.0, 4 * 3600.0), max_size=4),
    seed=st.integers(0, 2**16),
)
def test_no_double_claim_no_leak_with_restarts(
    hosts: int, clusters: int, replicas: int, scaled: int, workers: int,
    restarts: list[float], seed: int,
) -> None:
    spec = scenario.loads(_scenario(hosts, clusters, replicas, scaled, workers))
    sim = simulation.Simulation(spec, seed=seed)
    restarted = {c.name for c in controllerset.CONTROLLERS
                 if c.group in (controllerset.CAPM3, controllerset.IPAM)}
    restarted |= {c.name for c in sim.controllers if c.name.startswith(f"{capicore.CAPI}-")}
    for at in restarts:
        sim.env.timeout(at).callbacks.append(lambda _e: _restart_all(sim, restarted))
    out = sim.run()

    counts = out.observer.violations.counts
    assert not any(counts[name] for name in SAFETY), out.observer.violations.messages
    assert not out.time_limit_hit, "the clusters were not torn down in time"
    happened = sum(1 for at in restarts if at < out.makespan_s)  # the run ends when done
    assert sum(c.restarts for c in out.controllers) == happened * len(restarted)
    store = sim.store
    assert store.list(capi.Machine) == [] and store.list(v2.Metal3Machine) == []
    assert store.list(ipam.IPAddress) == [] and store.list(ipam.IPClaim) == []
    for host in store.list(bmh.BareMetalHost):
        assert host.spec.consumer_ref is None, host.metadata.name
        assert capi.CLUSTER_NAME_LABEL not in host.metadata.labels
        assert host.status.provisioning.state == bmh.ProvisioningState.AVAILABLE
