"""The scenario's `clusters` section: parsed strictly, every problem named by its field path."""

import pytest

from metalcubed.simulators.fleet import clusterspec, scenario

BASE = """
name: t
groups: [{name: vm, count: 4, profile: generic, bmc: redfish-virtualmedia}]
images: {os: {url: http://x/os.raw, checksum: http://x/os.raw.sha256sum, size: 1GiB}}
workload: [{action: enroll, at: 0s}]
"""


def _errors(text: str) -> dict[str, str]:
    with pytest.raises(scenario.ScenarioError) as caught:
        scenario.loads(BASE + text)
    return {e.field: e.message for e in caught.value.errors}


def test_a_full_section_parses() -> None:
    spec = scenario.loads(BASE + """
clusters:
  count: 2
  replicas: 3
  image: os
  create_at: 30m
  health_check: {max_unhealthy: 40%, node_startup_timeout: 30m, unhealthy_timeout: 5m,
                 max_in_flight: 1}
  capi: {concurrency: 4, kube_api_qps: 50}
  steps:
    - {name: grow, action: scale, when: running, replicas: 5}
    - {action: outage, at: 2h, clusters: [cluster-01], fraction: 25%, duration: 10m}
    - {action: delete, when: running, delay: 1m}
slos:
  grow: {metric: clusters.settle_s.grow, max: 1h}
  p95: {metric: clusters.machine_running_s.p95, max: 1h}
""")
    clusters = spec.clusters
    assert clusters is not None
    assert clusters.names == ("cluster-00", "cluster-01")
    assert clusters.namespace == "metal3"
    assert clusters.create_at_s == 1800.0
    assert clusters.health_check == clusterspec.HealthCheck(
        max_unhealthy="40%", node_startup_timeout_s=1800.0, unhealthy_timeout_s=300.0,
        max_in_flight=1)
    assert clusters.capi == clusterspec.CapiSettings(concurrency=4, kube_api_qps=50.0)
    steps = clusters.steps
    assert [s.name for s in steps] == ["grow", "1-outage", "2-delete"]
    assert steps[1].clusters == ("cluster-01",) and steps[1].fraction == 0.25
    assert steps[1].at_s == 7200.0 and steps[2].delay_s == 60.0


@pytest.mark.parametrize(("section", "field", "words"), [
    ("{replicas: 1, image: os}", "clusters", "exactly one of `count` or `names`"),
    ("{count: 1, image: os}", "clusters.replicas", "required"),
    ("{count: 1, replicas: 1, image: nope}", "clusters.image", "unknown image 'nope'"),
    ("{count: 1, replicas: 1, image: os, namespace: other}", "clusters.namespace",
     "no host group is in namespace 'other'"),
    ("{names: [a, a], replicas: 1, image: os}", "clusters.names", "unique"),
    ("{count: 1, replicas: 1, image: os, steps: [{action: scale, when: running}]}",
     "clusters.steps[0].replicas", "required for scale"),
    ("{count: 1, replicas: 1, image: os, steps: [{action: delete, when: running, replicas: 2}]}",
     "clusters.steps[0].replicas", "only a scale step takes replicas"),
    ("{count: 1, replicas: 1, image: os, steps: [{action: delete}]}", "clusters.steps[0]",
     "exactly one of `at`"),
    ("{count: 1, replicas: 1, image: os, steps: [{action: delete, when: later}]}",
     "clusters.steps[0].when", "unknown value 'later'"),
    ("{count: 1, replicas: 1, image: os, steps: [{action: delete, at: 1h, clusters: [x]}]}",
     "clusters.steps[0].clusters[0]", "unknown cluster 'x'"),
    ("{count: 1, replicas: 1, image: os, health_check: {max_unhealthy: lots}}",
     "clusters.health_check.max_unhealthy", "expected an integer"),
    ("{count: 1, replicas: 1, image: os, colour: red}", "clusters.colour", "unknown key"),
    ("{count: 1, replicas: 1, image: os, ipam: {network: nope, prefix: 24}}",
     "clusters.ipam.network", "expected an IPv4 network"),
    ("{count: 1, replicas: 1, image: os, ipam: {network: 10.0.0.0/16, prefix: 8}}",
     "clusters.ipam.prefix", "between the network's /16 and /28"),
    ("{count: 20, replicas: 1, image: os, ipam: {network: 10.0.0.0/24, prefix: 28}}",
     "clusters.ipam.prefix", "16 /28 subnets for 20 clusters"),
])
def test_bad_sections_name_the_field(section: str, field: str, words: str) -> None:
    errors = _errors(f"clusters: {section}\n")
    assert field in errors, errors
    assert words in errors[field]


def test_each_cluster_gets_its_own_pool() -> None:
    ipam = clusterspec.Ipam(network="10.100.0.0/16", prefix=24)
    assert ipam.pool(0) == ("10.100.0.10", "10.100.0.254", "10.100.0.1")
    assert ipam.pool(9) == ("10.100.9.10", "10.100.9.254", "10.100.9.1")


def test_cluster_figures_need_the_section_and_a_known_step() -> None:
    errors = _errors("slos: {x: {metric: clusters.remediated, min: 1}}\n")
    assert "needs a `clusters` section" in errors["slos.x.metric"]
    errors = _errors("clusters: {count: 1, replicas: 1, image: os}\n"
                     "slos: {x: {metric: clusters.settle_s.grow, max: 1h}}\n")
    assert "unknown cluster step 'grow'" in errors["slos.x.metric"]
    errors = _errors("clusters: {count: 1, replicas: 1, image: os}\n"
                     "slos: {x: {metric: clusters.bogus, max: 1}}\n")
    assert "unknown metric 'clusters.bogus'" in errors["slos.x.metric"]


def test_the_shipped_scenario_parses() -> None:
    path = scenario.shipped_scenario_path("clusters-1000")
    assert path is not None
    spec = scenario.load(path)
    assert spec.host_count == 1000
    assert spec.clusters is not None and len(spec.clusters.names) == 10


def test_scaling_the_hosts_scales_the_clusters() -> None:
    """`metalcubed sim --hosts N`: Machines in proportion, so the clusters still fit."""
    path = scenario.shipped_scenario_path("clusters-1000")
    assert path is not None
    spec = scenario.load(path).with_hosts(100)
    assert spec.host_count == 100
    assert spec.clusters is not None
    assert spec.clusters.replicas == 8
    grow = next(s for s in spec.clusters.steps if s.name == "grow")
    assert grow.replicas == 10  # 10 clusters x 10 = the 100 hosts
