"""The scenario's `clusters` section: Cluster API clusters over the fleet's hosts.

    clusters:
      count: 10                 # clusters <prefix>-00 .. <prefix>-09 (or `names: [a, b]`)
      name_prefix: cluster
      namespace: metal3         # where the hosts are (CAPM3 takes hosts of its namespace)
      replicas: 80              # each cluster's MachineDeployment
      create_at: 40m            # when the clusters are created (default 0s)
      image: ubuntu             # one of `images`
      kubelet_join: 20s         # a Node registers this long after its server's OS is up
      health_check:             # one MachineHealthCheck per cluster (optional)
        max_unhealthy: 40%      # remediation.triggerIf.unhealthyLessThanOrEqualTo
        node_startup_timeout: 20m
        unhealthy_timeout: 5m   # Ready Unknown or False for longer: unhealthy
        max_in_flight: 10       # MachineDeployment remediation.maxInFlight (optional)
        reboot: {retry_limit: 1, timeout: 10m}   # optional: CAPM3's Metal3Remediation
      ipam: {network: 10.100.0.0/16, prefix: 24}   # optional: a pool per cluster
      capi:                     # Cluster API core's manager
        concurrency: 10
        kube_api_qps: 20
        kube_api_burst: 30
      steps:                    # in order, each `at` a time or `when` clusters are running/deleted
        - {name: grow, action: scale, when: running, replicas: 100}
        - {name: storm, action: outage, when: running, clusters: [cluster-00], fraction: 40%,
           duration: 15m}
        - {name: teardown, action: delete, when: running, delay: 5m}

Parsed strictly like the rest of the scenario (scenario.py's helpers): every problem is a
`SpecError` naming its field path.
"""

import ipaddress
import itertools
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from metalcubed.simulators.fleet import scenario


class ClusterAction(StrEnum):
    SCALE = "scale"
    """Set the MachineDeployments' replicas."""
    OUTAGE = "outage"
    """Take the kubelets of a fraction of each cluster's Nodes down for `duration`."""
    DELETE = "delete"
    """Delete the Clusters (Cluster API deletes everything under them)."""


class ClusterWhen(StrEnum):
    RUNNING = "running"
    """Every selected cluster has its replicas Running with Ready Nodes, none being deleted."""
    DELETED = "deleted"
    """Every selected cluster is gone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStep:
    name: str
    action: ClusterAction
    clusters: tuple[str, ...] = ()
    """Empty: every cluster."""
    at_s: float | None = None
    when: ClusterWhen | None = None
    delay_s: float = 0.0
    replicas: int = 0
    fraction: float = 0.0
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheck:
    max_unhealthy: int | str = "100%"
    node_startup_timeout_s: float = 600.0
    unhealthy_timeout_s: float = 300.0
    max_in_flight: int | str | None = None
    reboot: "Reboot | None" = None
    """CAPM3's remediation (a Metal3RemediationTemplate, Reboot strategy) instead of the
    MachineSet deleting and replacing unhealthy Machines."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reboot:
    retry_limit: int = 1
    timeout_s: float = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CapiSettings:
    concurrency: int = 10
    """Cluster API's --*-concurrency flags (10 each)."""
    kube_api_qps: float = 20.0
    kube_api_burst: int = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class Ipam:
    """Addresses for the Machines: one IPPool per cluster (the `index`-th subnet of `network`
    with `prefix`: gateway its first address, the range from the 10th to the last but one) and
    a Metal3DataTemplate whose metaData takes an address from it."""

    network: str
    prefix: int

    def pool(self, index: int) -> tuple[str, str, str]:
        """(start, end, gateway) of the cluster `index`'s pool."""
        subnet = next(itertools.islice(
            ipaddress.IPv4Network(self.network).subnets(new_prefix=self.prefix), index, None))
        return str(subnet[10]), str(subnet[-2]), str(subnet[1])


@dataclass(frozen=True, slots=True, kw_only=True)
class Clusters:
    names: tuple[str, ...]
    namespace: str
    replicas: int
    image: str
    create_at_s: float = 0.0
    """When the user creates the clusters (simulated seconds)."""
    kubelet_join_s: float = 20.0
    health_check: HealthCheck | None = None
    capi: CapiSettings = CapiSettings()
    ipam: Ipam | None = None
    steps: tuple[ClusterStep, ...] = ()


STATS = ("p50", "p95", "p99", "max")
METRICS = (
    "clusters.machine_running_s.<p50|p95|p99|max>",
    "clusters.settle_s.<step name>",
    "clusters.machines_running",
    "clusters.machines_created",
    "clusters.remediated",
    "clusters.remediation_requests",
    "clusters.short_circuits",
    "clusters.leaked",
)
"""The cluster figures an SLO may name (docs/scenarios.md)."""


def check_metric(metric: str, steps: tuple[ClusterStep, ...] | None) -> bool:
    """Whether `metric` is a time figure; ValueError when it names no cluster figure (or, given
    the steps, a step that does not exist)."""
    parts = metric.split(".")
    if len(parts) == 3 and parts[1] == "machine_running_s":
        if parts[2] not in STATS:
            raise ValueError(f"unknown statistic {parts[2]!r}; expected p50, p95, p99 or max")
        return True
    if len(parts) == 3 and parts[1] == "settle_s":
        if steps is None:
            return True
        names = [s.name for s in steps]
        if parts[2] not in names:
            raise ValueError(f"unknown cluster step {parts[2]!r}; known: "
                             f"{', '.join(names) or 'none'}")
        return True
    if len(parts) == 2 and parts[1] in ("machines_running", "machines_created", "remediated",
                                         "remediation_requests", "short_circuits", "leaked"):
        return False
    raise ValueError(f"unknown metric {metric!r}; cluster figures: {', '.join(METRICS)}")


def _int_or_percent(value: Any, path: str) -> int | str:
    if isinstance(value, str) and value.strip().endswith("%"):
        fraction = scenario._rate(value, path)
        return f"{fraction * 100:g}%"
    return scenario._int(value, path)


def _names(value: Any, path: str, known: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise scenario._Invalid(path, "expected a non-empty list of cluster names")
    names: list[str] = []
    for i, item in enumerate(value):
        name = scenario._str(item, scenario._join(path, i))
        if name not in known:
            raise scenario._Invalid(scenario._join(path, i),
                                    f"unknown cluster {name!r}; known: {', '.join(known)}")
        names.append(name)
    return tuple(names)


def _step(data: Any, path: str, index: int, known: tuple[str, ...]) -> ClusterStep:
    values = scenario._fields(scenario._mapping(data, path), path, {
        "name": scenario._str,
        "action": lambda v, p: scenario._enum(ClusterAction, v, p),
        "clusters": lambda v, p: _names(v, p, known),
        "at": scenario._duration,
        "when": lambda v, p: scenario._enum(ClusterWhen, v, p),
        "delay": scenario._duration,
        "replicas": scenario._int_at_least(0),
        "fraction": scenario._rate,
        "duration": scenario._duration,
    })
    if "action" not in values:
        raise scenario._Invalid(scenario._join(path, "action"), "required")
    action: ClusterAction = values["action"]
    if ("at" in values) == ("when" in values):
        raise scenario._Invalid(path, "give exactly one of `at` (a time) or `when` "
                                      "(running or deleted)")
    wanted = {ClusterAction.SCALE: ("replicas",), ClusterAction.OUTAGE: ("fraction", "duration"),
              ClusterAction.DELETE: ()}[action]
    for key in ("replicas", "fraction", "duration"):
        if key in wanted and key not in values:
            raise scenario._Invalid(scenario._join(path, key), f"required for {action.value}")
        if key not in wanted and key in values:
            raise scenario._Invalid(scenario._join(path, key),
                                    f"only {'a scale' if key == 'replicas' else 'an outage'} "
                                    f"step takes {key}, not {action.value}")
    return ClusterStep(
        name=values.get("name", f"{index}-{action.value}"), action=action,
        clusters=values.get("clusters", ()), at_s=values.get("at"), when=values.get("when"),
        delay_s=values.get("delay", 0.0), replicas=values.get("replicas", 0),
        fraction=values.get("fraction", 0.0), duration_s=values.get("duration", 0.0))


def parse(data: Any, path: str, *, images: "dict[str, scenario.Image]",
          namespaces: tuple[str, ...]) -> Clusters:
    """The `clusters` section; raises scenario._Invalid naming the field."""
    fields = scenario._mapping(data, path)
    raw_steps = fields.get("steps", [])
    top = {k: v for k, v in fields.items() if k != "steps"}
    values = scenario._fields(top, path, {
        "count": scenario._int_at_least(1),
        "names": lambda v, p: v,
        "name_prefix": scenario._str,
        "namespace": scenario._str,
        "replicas": scenario._int_at_least(0),
        "image": scenario._str,
        "create_at": scenario._duration,
        "kubelet_join": scenario._duration,
        "health_check": lambda v, p: _health_check(v, p),
        "ipam": lambda v, p: _ipam(v, p),
        "capi": lambda v, p: CapiSettings(**scenario._fields(
            scenario._mapping(v, p), p, {"concurrency": scenario._int_at_least(1),
                                         "kube_api_qps": scenario._positive_number,
                                         "kube_api_burst": scenario._int_at_least(1)})),
    })
    if ("count" in values) == ("names" in values):
        raise scenario._Invalid(path, "give exactly one of `count` or `names`")
    if "names" in values:
        raw = values["names"]
        if not isinstance(raw, list) or not raw:
            raise scenario._Invalid(scenario._join(path, "names"), "expected a non-empty list")
        names = tuple(scenario._str(n, scenario._join(scenario._join(path, "names"), i))
                      for i, n in enumerate(raw))
    else:
        prefix = values.get("name_prefix", "cluster")
        names = tuple(f"{prefix}-{i:02d}" for i in range(values["count"]))
    if len(set(names)) != len(names):
        raise scenario._Invalid(scenario._join(path, "names"), "cluster names must be unique")
    for key in ("replicas", "image"):
        if key not in values:
            raise scenario._Invalid(scenario._join(path, key), "required")
    if values["image"] not in images:
        raise scenario._Invalid(scenario._join(path, "image"),
                                f"unknown image {values['image']!r}; known: "
                                f"{', '.join(sorted(images)) or 'none'}")
    namespace = values.get("namespace", namespaces[0] if namespaces else "metal3")
    if namespace not in namespaces:
        raise scenario._Invalid(scenario._join(path, "namespace"),
                                f"no host group is in namespace {namespace!r} (CAPM3 takes "
                                f"hosts of its own namespace); groups use: "
                                f"{', '.join(sorted(set(namespaces)))}")
    if not isinstance(raw_steps, list):
        raise scenario._Invalid(scenario._join(path, "steps"), "expected a list of steps")
    steps = tuple(_step(body, scenario._join(scenario._join(path, "steps"), i), i, names)
                  for i, body in enumerate(raw_steps))
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if step.name in seen:
            raise scenario._Invalid(scenario._join(scenario._join(path, "steps"), i),
                                    f"duplicate step name {step.name!r}")
        seen.add(step.name)
    ipam = values.get("ipam")
    if ipam is not None:
        network = ipaddress.ip_network(ipam.network)
        room = 2 ** (ipam.prefix - network.prefixlen)
        if room < len(names):
            raise scenario._Invalid(scenario._join(path, "ipam.prefix"),
                                    f"{ipam.network} has {room} /{ipam.prefix} subnets for "
                                    f"{len(names)} clusters")
    return Clusters(names=names, namespace=namespace, replicas=values["replicas"],
                    image=values["image"], create_at_s=values.get("create_at", 0.0),
                    kubelet_join_s=values.get("kubelet_join", 20.0),
                    health_check=values.get("health_check"), ipam=ipam,
                    capi=values.get("capi", CapiSettings()), steps=steps)


def _ipam(value: Any, path: str) -> Ipam:
    values = scenario._fields(scenario._mapping(value, path), path, {
        "network": scenario._str, "prefix": scenario._int_at_least(1)})
    for key in ("network", "prefix"):
        if key not in values:
            raise scenario._Invalid(scenario._join(path, key), "required")
    try:
        network = ipaddress.IPv4Network(values["network"])
    except ValueError as err:
        raise scenario._Invalid(scenario._join(path, "network"),
                                f"expected an IPv4 network (a.b.c.d/n): {err}") from None
    if not network.prefixlen <= values["prefix"] <= 28:
        raise scenario._Invalid(scenario._join(path, "prefix"),
                                f"must be between the network's /{network.prefixlen} and /28")
    return Ipam(network=str(network), prefix=values["prefix"])


def _reboot(value: Any, path: str) -> Reboot:
    values = scenario._fields(scenario._mapping(value, path), path, {
        "retry_limit": scenario._int_at_least(0), "timeout": scenario._duration})
    if "timeout" in values:
        values["timeout_s"] = values.pop("timeout")
    return Reboot(**values)


def _health_check(value: Any, path: str) -> HealthCheck:
    values = scenario._fields(scenario._mapping(value, path), path, {
        "max_unhealthy": _int_or_percent,
        "node_startup_timeout": scenario._duration,
        "unhealthy_timeout": scenario._duration,
        "max_in_flight": _int_or_percent,
        "reboot": lambda v, p: _reboot(v, p),
    })
    renames = {"node_startup_timeout": "node_startup_timeout_s",
               "unhealthy_timeout": "unhealthy_timeout_s"}
    return HealthCheck(**{renames.get(k, k): v for k, v in values.items()})
