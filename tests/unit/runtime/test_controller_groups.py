"""Controller groups (bmo, capm3, ipam): `--controllers` picks them, a bad group is refused
naming it, a named group whose CRDs the API server does not serve stops the manager naming
them, and a manager without BMO's controllers builds no provisioner (binds no port)."""

import pytest
import urllib3
from kubernetes import client as k8s

from metalcubed.cli import main as cli
from metalcubed.cli import manager as manager_cli
from metalcubed.controllers import manager, memory
from metalcubed.controllers.kube import metrics
from metalcubed.core import controllerset, memory_store
from metalcubed.core.api import capi, meta
from metalcubed.core.api.capm3 import v1beta2
from metalcubed.core.testing import fakes

FIXTURE = ("--provisioner", "fixture")


def _run(argv: list[str]) -> int:
    try:
        return cli.main(["manager", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)


def test_every_controller_has_one_of_the_three_groups_bmo_first() -> None:
    groups = [c.group for c in controllerset.CONTROLLERS]
    assert set(groups) == set(controllerset.GROUPS)
    assert groups == sorted(groups, key=controllerset.GROUPS.index)  # grouped, bmo first
    assert controllerset.in_groups(["bmo"]) == controllerset.BMO_CONTROLLERS
    capm3 = {c.name for c in controllerset.in_groups(["capm3"])}
    assert {"metal3cluster", "metal3machine", "metal3datatemplate"} <= capm3
    assert "ippool" in {c.name for c in controllerset.in_groups(["ipam"])}


def test_an_unknown_group_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown controller group\(s\) 'capi'.*bmo, capm3, "
                                         r"ipam"):
        controllerset.in_groups(["bmo", "capi"])
    with pytest.raises(ValueError, match="unknown group 'x'"):
        controllerset.ControllerDef(controllerset.IPPOOL.wiring,
                                    controllerset.IPPOOL.new_reconciler, group="x")


@pytest.mark.parametrize(("flag", "says"), [
    ("bmo,capi", "--controllers: unknown controller group(s) 'capi'"),
    ("bmo,,ipam", "--controllers: 'bmo,,ipam' has an empty group name"),
    ("", "--controllers: '' has an empty group name"),
], ids=["unknown", "empty-item", "empty"])
def test_the_manager_refuses_a_bad_group_naming_the_flag(
    capsys: pytest.CaptureFixture[str], flag: str, says: str,
) -> None:
    assert _run([*FIXTURE, "--controllers", flag]) == 2
    assert says in capsys.readouterr().err


def test_groups_are_parsed_in_order_without_repeats() -> None:
    args = cli.build_parser().parse_args(["manager", *FIXTURE, "--controllers",
                                          "ipam, capm3,ipam"])
    assert manager_cli.options_from(args).controllers == ("ipam", "capm3")
    args = cli.build_parser().parse_args(["manager", *FIXTURE])
    assert manager_cli.options_from(args).controllers is None


def test_a_capm3_only_manager_needs_no_engine_flags() -> None:
    # The engine's wildcard bind address needs --agent-api-url; without bmo nothing binds.
    args = cli.build_parser().parse_args(["manager", "--controllers", "capm3",
                                          "--agent-api-bind-address", ":6385"])
    assert manager_cli.options_from(args).controllers == ("capm3",)


def _serves_no(*missing: type[meta.Resource]):  # type: ignore[no-untyped-def]
    return lambda kind: kind not in missing


def test_a_named_group_without_its_crds_is_an_error_naming_them() -> None:
    with pytest.raises(ValueError, match=r"--controllers capm3: the API server does not serve "
                                         r"machines.cluster.x-k8s.io \(cluster.x-k8s.io/v1beta2"):
        manager.selected_controllers(("bmo", "capm3"), _serves_no(capi.Machine))


def test_without_the_flag_a_group_missing_crds_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chosen = manager.selected_controllers(None, _serves_no(capi.Cluster, capi.Machine))
    assert {c.group for c in chosen} == {"bmo", "ipam"}
    assert "not running the capm3 controllers" in caplog.text
    assert "clusters.cluster.x-k8s.io" in caplog.text
    assert manager.selected_controllers(None, _serves_no()) == controllerset.CONTROLLERS


def test_a_group_this_identity_may_not_read_is_left_out_or_named() -> None:
    # The BMO Deployment's ServiceAccount on a cluster that also serves IPAM's kinds.
    def may(kind):  # type: ignore[no-untyped-def]
        return kind.API_VERSION.split("/")[0] not in ("ipam.metal3.io", "ipam.cluster.x-k8s.io")

    chosen = manager.selected_controllers(None, _serves_no(capi.Machine), may)
    assert {c.group for c in chosen} == {"bmo"}
    with pytest.raises(ValueError, match=r"--controllers ipam: this identity may not list and "
                                         r"watch ippools.ipam.metal3.io"):
        manager.selected_controllers(("ipam",), _serves_no(), may)


def test_a_manager_of_capm3_and_ipam_builds_no_provisioner() -> None:
    clock = memory.WallClock()
    store = memory.LockedStore(memory_store.MemoryStore(clock=clock))
    registry = metrics.new_registry()
    options = manager.ManagerOptions(namespace="lab", provisioner="engine",
                                     agent_api_bind_address="127.0.0.1:0",
                                     boot_server_bind_address="127.0.0.1:0")
    composed = manager.compose(
        options, backend=store, recorder=fakes.RecordingEventRecorder(), registry=registry,
        runtime_metrics=metrics.RuntimeMetrics(registry),
        bmo_metrics=metrics.PrometheusMetrics(registry), clock=clock,
        controllers=controllerset.in_groups(["capm3", "ipam"]))
    assert composed.services is None
    assert set(composed.controllers) == {c.name for c in controllerset.CONTROLLERS
                                         if c.group != "bmo"}
    kinds = {i.kind for i in composed.informers}
    assert {v1beta2.Metal3Machine, capi.Machine} <= kinds and meta.Secret not in kinds
    with pytest.raises(RuntimeError, match="no bmo group"):
        composed.provisioner_factory.new_provisioner(None, lambda r, m: None)  # type: ignore[arg-type]



def test_the_bmh_name_based_preallocation_flag_is_parsed() -> None:
    args = cli.build_parser().parse_args(["manager", *FIXTURE,
                                          "--enable-bmh-name-based-preallocation"])
    assert manager_cli.options_from(args).host_named_claims is True
    default = manager_cli.options_from(cli.build_parser().parse_args(["manager", *FIXTURE]))
    assert default.host_named_claims is False  # upstream's default


class _FlakyApi:
    """An API client whose first calls find no server (a unit test of one function)."""

    class configuration:  # the kubernetes client's attribute name
        host = "https://127.0.0.1:6443"

    def __init__(self, failures: int, then: object) -> None:
        self.failures, self.then, self.calls = failures, then, 0

    def call_api(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
        if isinstance(self.then, Exception):
            raise self.then
        return self.then


def test_start_requests_wait_for_the_api_server_then_name_it() -> None:
    pauses: list[float] = []
    api = _FlakyApi(2, {"resources": []})
    assert manager._start_request(api, "/apis/x/v1", "GET", "discovery",  # type: ignore[arg-type]
                                  sleep=pauses.append) == {"resources": []}
    assert pauses == list(manager.START_RETRY_S[:2])
    gone = _FlakyApi(99, {})
    with pytest.raises(OSError, match=r"discovery: cannot reach the API server at "
                                      r"https://127.0.0.1:6443"):
        manager._start_request(gone, "/apis/x/v1", "GET", "discovery",  # type: ignore[arg-type]
                               sleep=lambda s: None)
    assert gone.calls == len(manager.START_RETRY_S) + 1
    missing = _FlakyApi(0, k8s.ApiException(status=404, reason="Not Found"))
    assert manager._start_request(missing, "/apis/x/v1", "GET", "d") == {}  # type: ignore[arg-type]
    denied = _FlakyApi(0, k8s.ApiException(status=401, reason="Unauthorized"))
    with pytest.raises(OSError, match="d: the API server answered 401 Unauthorized"):
        manager._start_request(denied, "/apis/x/v1", "GET", "d")  # type: ignore[arg-type]
