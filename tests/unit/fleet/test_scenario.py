"""Scenario files: the shipped ones parse; malformed ones get errors that name the field."""

import copy
from typing import Any

import pytest

from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet import scenario


def minimal() -> dict[str, Any]:
    return {
        "name": "t",
        "groups": [
            {"name": "a", "count": 3, "profile": "generic", "bmc": "redfish"},
            {"name": "b", "count": 1, "profile": "vm", "bmc": "redfish-virtualmedia"},
        ],
        "images": {"img": {"url": "http://x/img.raw", "checksum": "a" * 64, "size": "1GiB"}},
        "workload": [
            {"action": "enroll", "at": "0s"},
            {"action": "provision", "image": "img", "when": "available"},
        ],
    }


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(scenario.ScenarioError) as caught:
        scenario.parse(data)
    return {err.field: err.message for err in caught.value.errors}


@pytest.mark.parametrize("name", ["quickstart", "fleet-1000", "faults-1000", "firmware-1000"])
def test_shipped_scenarios_parse(name: str) -> None:
    path = scenario.shipped_scenario_path(name)
    assert path is not None
    assert scenario.load(path).host_count > 0


def test_default_scenario_is_quickstart_with_about_50_hosts() -> None:
    spec = scenario.load_default()
    assert spec.name == "quickstart"
    assert 40 <= spec.host_count <= 60


def test_minimal_scenario_gets_upstream_controller_defaults() -> None:
    spec = scenario.parse(minimal())
    assert spec.controller.provisioning_limit == 20
    assert spec.controller.kube_api_qps == 20 and spec.controller.kube_api_burst == 30
    assert spec.controller.max_provisioning_retries == 5
    assert spec.groups[0].boot == scenario.BootMethod.PXE
    assert spec.groups[1].boot == scenario.BootMethod.VIRTUAL_MEDIA


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


BAD: list[tuple[str, tuple[Any, ...], Any, str, str]] = [
    ("unknown top-level key", ("hostz",), 3, "hostz", "unknown key"),
    ("unknown group key", ("groups", 0, "cout"), 3, "groups[0].cout", "unknown key"),
    ("wrong type", ("groups", 0, "count"), "three", "groups[0].count", "expected an integer"),
    ("zero count", ("groups", 0, "count"), 0, "groups[0].count", "at least 1"),
    ("unknown profile", ("groups", 0, "profile"), "dell-9000", "groups[0].profile",
     "unknown profile 'dell-9000'"),
    ("unknown scheme", ("groups", 0, "bmc"), "telnet", "groups[0].bmc", "Unknown BMC type"),
    ("boot method the scheme cannot do", ("groups", 0, "boot"), "virtual-media",
     "groups[0].boot", "boots the ramdisk over pxe"),
    ("negative duration", ("time_limit",), "-5m", "time_limit", "negative"),
    ("negative poll", ("provisioner",), {"poll": -3}, "provisioner.poll", "negative"),
    ("the removed Ironic-like model", ("controller",), {"provisioner": "ironic"},
     "controller.provisioner", "Ironic-like comparison model was removed"),
    ("a conductor limit", ("provisioner",), {"max_concurrent_clean": 50},
     "provisioner.max_concurrent_clean", "no conductor limits"),
    ("a conductor callback timeout", ("provisioner",), {"deploy_timeout": "30m"},
     "provisioner.deploy_timeout", "use provisioner.ramdisk_timeout"),
    ("an image without a checksum", ("images",), {"i": {"url": "http://x/i.raw", "size": 1}},
     "images.i.checksum", "verifies every image it writes"),
    ("poll jitter", ("provisioner",), {"poll_jitter": 0.25}, "provisioner.poll_jitter",
     "without jitter"),
    ("p99 below median", ("profiles",), {"p": {"post": {"lognormal": {"median": "3m",
     "p99": "1m"}}}}, "profiles.p.post.lognormal.p99", "must not be below the median"),
    ("unknown distribution", ("profiles",), {"p": {"post": {"gamma": 3}}},
     "profiles.p.post.gamma", "unknown distribution"),
    ("rate above one", ("faults",), {"bmc": {"error_rate": 1.5}}, "faults.bmc.error_rate",
     "at most 1"),
    ("unknown fault group", ("faults",), {"groups": ["zz"]}, "faults.groups[0]",
     "unknown group 'zz'"),
    ("unknown image", ("workload", 1, "image"), "nope", "workload[1].image", "unknown image"),
    ("unknown state", ("workload", 1, "when"), "happy", "workload[1].when", "unknown state"),
    ("unknown action", ("workload", 1, "action"), "reboot", "workload[1].action",
     "unknown value 'reboot'"),
    ("unknown slo metric", ("slos",), {"x": {"metric": "speed", "max": 1}}, "slos.x.metric",
     "unknown metric"),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "fragment"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_malformed_scenario_names_the_field(
    path: tuple[Any, ...], value: Any, field: str, fragment: str
) -> None:
    errors = errors_of(_set(minimal(), path, value))
    assert field in errors, errors
    assert fragment in errors[field]


def test_both_at_and_when_is_rejected() -> None:
    data = minimal()
    data["workload"][1]["at"] = "1m"
    assert "exactly one of `at`" in errors_of(data)["workload[1]"]


def test_every_bad_field_is_reported_not_just_the_first() -> None:
    data = _set(minimal(), ("groups", 0, "count"), -1)
    data = _set(data, ("time_limit",), "soon")
    assert {"groups[0].count", "time_limit"} <= set(errors_of(data))


def test_yaml_syntax_error_is_a_scenario_error() -> None:
    with pytest.raises(scenario.ScenarioError, match="not valid YAML"):
        scenario.loads("name: [unclosed")


def test_distribution_forms() -> None:
    spec = scenario.parse(
        _set(minimal(), ("profiles",), {"p": {
            "post": "90s",
            "pxe_boot": {"uniform": {"min": "10s", "max": "1m"}},
            "inspection": {"normal": {"mean": "1m", "stddev": "10s"}},
            "cleaning": {"lognormal": {"median": "30s", "p99": "2m"}},
        }})
    )
    profile = spec.profiles["p"]
    assert profile.post == dist.Fixed(value=90.0)
    assert profile.pxe_boot == dist.Uniform(low=10.0, high=60.0)
    assert profile.inspection == dist.Normal(mean=60.0, stddev=10.0)
    assert profile.cleaning == dist.LogNormal(median=30.0, p99=120.0)


def test_percent_slo_target_is_resolved_against_hosts() -> None:
    data = _set(minimal(), ("slos",), {"most": {"metric": "final_states.available",
                                                 "min": "90%"}})
    slo = scenario.parse(data).slos[0]
    assert slo.target_fraction == pytest.approx(0.9)


@pytest.mark.parametrize("hosts", [1, 7, 1000, 10_000])
def test_with_hosts_keeps_the_total_exact(hosts: int) -> None:
    spec = scenario.parse(minimal()).with_hosts(hosts)
    assert spec.host_count == hosts


def test_with_hosts_keeps_proportions() -> None:
    spec = scenario.parse(minimal()).with_hosts(400)
    assert [g.count for g in spec.groups] == [300, 100]


def test_engine_settings_reach_the_engine() -> None:
    data = minimal()
    data["provisioner"] = {"ramdisk_timeout": "20m", "power_sync_interval": "2m",
                           "fast_track": False, "fast_track_timeout": "10m"}
    spec = scenario.parse(data)
    settings = spec.provisioner
    assert (settings.ramdisk_timeout_s, settings.power_sync_interval_s) == (1200.0, 120.0)
    assert not settings.fast_track and settings.fast_track_timeout_s == 600.0
    assert spec.controller.provisioner == scenario.ProvisionerBackend.ENGINE
