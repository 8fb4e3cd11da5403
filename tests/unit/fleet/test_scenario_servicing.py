"""Scenario files that service hosts: the firmware catalog, the service step, the new faults,
profile timings, controller selection and servicing SLOs; bad ones name the field."""

import copy
from typing import Any

import pytest

from metalcubed.simulators.fleet import distribution as dist
from metalcubed.simulators.fleet import scenario


def servicing() -> dict[str, Any]:
    return {
        "name": "t",
        "groups": [{"name": "a", "count": 3, "profile": "generic",
                    "bmc": "redfish-virtualmedia"}],
        "images": {"img": {"url": "http://x/img.raw", "checksum": "a" * 64, "size": "1GiB"}},
        "firmware": {
            "bios": {"component": "bios", "url": "https://fw/bios-2.4.1.fwimg"},
            "bmc": {"component": "bmc", "url": "https://fw/bmc.bin", "version": 6.1},
        },
        "faults": {"bmc": {"update_failure": "2%", "reboot_during_update": 0.05}},
        "profiles": {"p": {"firmware_update": "5m", "bmc_reboot": {"fixed": "90s"}}},
        "workload": [
            {"action": "enroll", "at": "0s"},
            {"action": "provision", "image": "img", "when": "available", "per_host": True},
            {"action": "service", "when": "provisioned", "per_host": True,
             "settings": {"ProcVirtualization": "Disabled", "PxeRetryCount": 5},
             "firmware": ["bios", "bmc"]},
        ],
        "slos": {"serviced": {"metric": "servicing.serviced", "min": "95%"},
                 "window": {"metric": "servicing.durations_s.p95", "max": "1h"}},
    }


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(scenario.ScenarioError) as caught:
        scenario.parse(data)
    return {err.field: err.message for err in caught.value.errors}


def test_a_servicing_scenario_parses() -> None:
    spec = scenario.parse(servicing())
    assert spec.services
    assert spec.firmware["bios"].version == "2.4.1"  # from the URL's file name
    assert spec.firmware["bmc"].version == "6.1"  # a YAML number, taken as written
    step = spec.workload[2]
    assert step.action == scenario.Action.SERVICE
    assert step.settings == (("ProcVirtualization", "Disabled"), ("PxeRetryCount", 5))
    assert step.firmware == ("bios", "bmc")
    assert step.policy == scenario.UpdatePolicy.ON_REBOOT
    assert spec.faults.bmc.update_failure == pytest.approx(0.02)
    assert spec.faults.bmc.reboot_during_update == pytest.approx(0.05)
    assert spec.profiles["p"].firmware_update == dist.Fixed(value=300.0)
    assert spec.slos[1].target == 3600.0
    assert spec.slos[0].target_fraction == pytest.approx(0.95)


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(servicing())
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(("path", "value", "field", "words"), [
    (("workload", 2, "firmware"), ["nope"], "workload[2].firmware[0]", "unknown firmware image"),
    (("workload", 2, "firmware"), ["bios", "bios"], "workload[2].firmware[1]",
     "a second image for component 'bios'"),
    (("workload", 2, "firmware"), [], "workload[2].firmware", "non-empty list"),
    (("workload", 2, "settings"), {"SecureBoot": True}, "workload[2].settings.SecureBoot",
     "quote it"),
    (("workload", 2, "settings"), {"X": 1.5}, "workload[2].settings.X",
     "expected a string or an integer"),
    (("workload", 2, "settings"), {}, "workload[2].settings", "at least one setting"),
    (("workload", 2, "policy"), "always", "workload[2].policy", "unknown value 'always'"),
    (("workload", 1, "settings"), {"A": "b"}, "workload[1].settings", "only a service step"),
    (("firmware", "bios", "component"), "nic", "firmware.bios.component",
     "unknown component 'nic'"),
    (("firmware", "bios", "url"), "ftp://fw/bios-1.fwimg", "firmware.bios.url", "http"),
    (("firmware", "bios", "url"), "https://fw/latest.bin", "firmware.bios.version",
     "does not name it"),
    (("faults", "bmc", "update_failure"), 1.5, "faults.bmc.update_failure", "at most 1"),
    (("profiles", "p", "firmware_update"), "-1m", "profiles.p.firmware_update", ""),
    (("controller",), {"controllers": ["dataimage"]}, "controller.controllers",
     "must include 'baremetalhost'"),
    (("controller",), {"controllers": ["baremetalhost", "nope"]}, "controller.controllers[1]",
     "unknown controller 'nope'"),
    (("slos", "x"), {"metric": "servicing.durations_s.p42", "max": "1h"}, "slos.x.metric",
     "unknown statistic"),
    (("slos", "x"), {"metric": "servicing.oops", "max": 1}, "slos.x.metric",
     "unknown metric"),
])
def test_bad_servicing_input_names_the_field(path: tuple[Any, ...], value: Any, field: str,
                                             words: str) -> None:
    errors = errors_of(_with(path, value))
    assert field in errors, errors
    assert words in errors[field]


def test_a_service_step_changes_something() -> None:
    data = servicing()
    del data["workload"][2]["settings"]
    del data["workload"][2]["firmware"]
    assert "changes `settings`, `firmware` or both" in errors_of(data)["workload[2]"]


def test_servicing_figures_need_a_service_step() -> None:
    data = servicing()
    del data["workload"][2]
    errors = errors_of(data)
    assert "needs a workload step with action: service" in errors["slos.serviced.metric"]


def test_controllers_may_be_selected() -> None:
    spec = scenario.parse(_with(("controller",), {"controllers": ["baremetalhost"]}))
    assert spec.controller.controllers == ("baremetalhost",)
