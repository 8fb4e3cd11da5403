"""End to end: `metalcubed manager` against the real kube-apiserver, driven as a user would.

The manager runs as a separate process (fixture provisioner at upstream's delays scaled down
to keep the suite short); the test applies upstream's example manifests with kubectl and edits
hosts with the official client, then watches what the API server shows.
"""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from metalcubed.controllers.kube import localcluster
from tests.kube import test_e2e_support as e2e

FAST = ("--fixture-delay-scale", "0.2", "--concurrency", "4")


@pytest.fixture
def manager(
    kube_cluster: localcluster.Cluster, kube_namespace: str, tmp_path: Path
) -> Iterator[e2e.ManagerProcess]:
    with e2e.running_manager(kube_cluster.kubeconfig, kube_namespace,
                             tmp_path / "manager.log", *FAST) as mgr:
        yield mgr


class StateRecorder:
    """Every provisioning state a host shows, in order, from a watch (states can last a
    single reconcile, too short for polling)."""

    def __init__(self, api: k8s.ApiClient, ns: str, name: str) -> None:
        self.states: list[str] = []
        self._watch = k8s_watch.Watch()
        # Listed here and watched from that version: the host's first states are not missed
        # when the thread's watch request reaches the API server after the host is created.
        since = e2e.hosts_api(api).list_namespaced_custom_object(
            e2e.GROUP, e2e.VERSION, ns, e2e.PLURAL,
            field_selector=f"metadata.name={name}")["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, args=(api, ns, name, since),
                                        daemon=True)
        self._thread.start()

    def _run(self, api: k8s.ApiClient, ns: str, name: str, since: str) -> None:
        objects = e2e.hosts_api(api)
        try:
            for event in self._watch.stream(
                objects.list_namespaced_custom_object, e2e.GROUP, e2e.VERSION, ns, e2e.PLURAL,
                field_selector=f"metadata.name={name}", resource_version=since,
                timeout_seconds=120,
            ):
                current = e2e.state(event["object"])
                if current and (not self.states or self.states[-1] != current):
                    self.states.append(current)
        except Exception:  # the stream is cut when the test stops watching
            return

    def stop(self) -> None:
        self._watch.stop()


def test_example_host_registers_inspects_prepares_and_becomes_available(
    manager: e2e.ManagerProcess, kube_api: k8s.ApiClient, kube_namespace: str,
    kubectl: "object",
) -> None:
    recorder = StateRecorder(kube_api, kube_namespace, "example-baremetalhost")
    kubectl("-n", kube_namespace, "apply", "-f",  # type: ignore[operator]
            str(e2e.EXAMPLES / "bmo-example-host.yaml"))
    e2e.wait_until(
        lambda: e2e.state(e2e.get_host(kube_api, kube_namespace, "example-baremetalhost"))
        == "available", timeout_s=60, what="example host available",
    )
    # The watch's thread may not have taken the last event yet when the poll saw it.
    e2e.wait_until(lambda: "available" in recorder.states, timeout_s=30,
                   what="the watch saw the host available")
    recorder.stop()
    assert recorder.states[:4] == ["registering", "inspecting", "preparing", "available"]
    host = e2e.get_host(kube_api, kube_namespace, "example-baremetalhost")
    assert "baremetalhost.metal3.io" in host["metadata"]["finalizers"]
    assert "errorType" not in host["status"] and host["status"]["errorCount"] == 0
    assert host["status"]["goodCredentials"]["credentials"]["name"] == (
        "example-baremetalhost-secret"
    )
    # Events are written by the manager's event broadcaster, after the write they describe.
    wanted = {"Registered", "BMCAccessValidated", "InspectionComplete"}
    e2e.wait_until(
        lambda: wanted <= {e["reason"] for e in e2e.events_for(
            kube_api, kube_namespace, "example-baremetalhost")},
        timeout_s=30, what=f"the host's Events {sorted(wanted)}")
    hardware = k8s.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        e2e.GROUP, e2e.VERSION, kube_namespace, "hardwaredata", "example-baremetalhost"
    )
    assert hardware["spec"]["hardware"]["cpu"]["arch"] == "x86_64"


def test_image_provisions_clearing_deprovisions_delete_removes_everything(
    manager: e2e.ManagerProcess, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    ns, name = kube_namespace, "h1"
    e2e.create_secret(kube_api, ns, "h1-bmc")
    e2e.create_host(kube_api, ns, name, secret="h1-bmc")
    e2e.wait_until(lambda: e2e.state(e2e.get_host(kube_api, ns, name)) == "available",
                   timeout_s=60, what="available")

    image = {"url": "http://images.example/os.qcow2", "checksum": "0123abcd",
             "checksumType": "sha256", "format": "qcow2"}
    e2e.patch_host(kube_api, ns, name, {"spec": {"image": image}})
    e2e.wait_until(lambda: e2e.state(e2e.get_host(kube_api, ns, name)) == "provisioned",
                   timeout_s=60, what="provisioned")
    host = e2e.get_host(kube_api, ns, name)
    assert host["status"]["provisioning"]["image"]["url"] == image["url"]
    assert host["status"]["poweredOn"] is True

    e2e.patch_host(kube_api, ns, name, {"spec": {"image": None}})
    e2e.wait_until(lambda: e2e.state(e2e.get_host(kube_api, ns, name)) == "available",
                   timeout_s=60, what="deprovisioned back to available")
    assert "image" not in e2e.get_host(kube_api, ns, name)["status"]["provisioning"]

    e2e.hosts_api(kube_api).delete_namespaced_custom_object(
        e2e.GROUP, e2e.VERSION, ns, e2e.PLURAL, name
    )
    e2e.wait_until(lambda: not e2e.host_exists(kube_api, ns, name), timeout_s=60,
                   what="host deleted (finalizer removed)")
    # The HardwareData loses its finalizer with the host and is garbage-collected.
    hardware = k8s.CustomObjectsApi(kube_api)
    e2e.wait_until(
        lambda: not hardware.list_namespaced_custom_object(
            e2e.GROUP, e2e.VERSION, ns, "hardwaredata")["items"],
        timeout_s=30, what="HardwareData collected",
    )
    wanted = {"ProvisioningComplete", "DeprovisioningComplete"}
    e2e.wait_until(  # Events go out through the broadcaster, after what they describe
        lambda: wanted <= {e["reason"] for e in e2e.events_for(kube_api, ns, name)},
        timeout_s=30, what=f"the host's Events {sorted(wanted)}")
    assert manager.alive()


def test_bad_credentials_example_shows_a_registration_error_without_a_crash_loop(
    manager: e2e.ManagerProcess, kube_api: k8s.ApiClient, kube_namespace: str,
    kubectl: "object",
) -> None:
    ns, name = kube_namespace, "example-baremetalhost"
    kubectl("-n", ns, "apply", "-f",  # type: ignore[operator]
            str(e2e.EXAMPLES / "bmo-example-host-bad-credentials.yaml"))

    def errored() -> bool:
        status = e2e.get_host(kube_api, ns, name).get("status") or {}
        return status.get("errorType") == "registration error"

    e2e.wait_until(errored, timeout_s=30, what="registration error on status")
    status = e2e.get_host(kube_api, ns, name)["status"]
    assert status["operationalStatus"] == "error"
    assert "password" in status["errorMessage"]
    assert status["errorCount"] >= 1

    def warned() -> bool:
        events = e2e.events_for(kube_api, ns, name)
        return any(e["type"] == "Warning" and e["reason"] == "BMCCredentialError"
                   for e in events)

    e2e.wait_until(warned, timeout_s=15, what="BMCCredentialError event")
    # No crash loop: the manager lives on and the host is not reconciled over and over. The
    # barrier is a later host the manager must take all the way to available (many passes of
    # every worker) while the failed host waits out its backoff (1-2 minutes after the first
    # error, upstream's): the host is not written to once and no reconcile panics.
    panics = manager.metric_sum("controller_runtime_reconcile_panics_total")
    host = e2e.get_host(kube_api, ns, name)
    count, version = host["status"]["errorCount"], host["metadata"]["resourceVersion"]
    e2e.create_secret(kube_api, ns, "witness-bmc")
    e2e.create_host(kube_api, ns, "witness", secret="witness-bmc")
    e2e.wait_until(lambda: e2e.state(e2e.get_host(kube_api, ns, "witness")) == "available",
                   timeout_s=60, what="a later host available (the barrier)")
    assert manager.alive()
    assert manager.metric_sum("controller_runtime_reconcile_panics_total") == panics
    host = e2e.get_host(kube_api, ns, name)
    assert (host["status"]["errorCount"], host["metadata"]["resourceVersion"]) == (
        count, version)
    # The password is never shown, neither on status nor in Events.
    secret_password = "MWYyZDFlMmU2N2Rm"
    assert secret_password not in str(status)
    assert "1f2d1e2e67df" not in str(e2e.events_for(kube_api, ns, name))


def test_paused_host_is_not_touched_until_unpaused(
    manager: e2e.ManagerProcess, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    ns = kube_namespace
    e2e.create_secret(kube_api, ns, "bmc")
    e2e.create_host(kube_api, ns, "paused", secret="bmc",
                    annotations={"baremetalhost.metal3.io/paused": ""})
    version = e2e.get_host(kube_api, ns, "paused")["metadata"]["resourceVersion"]
    # The barrier: a host created after the paused one, which the manager must see and take
    # all the way to available; the paused host's event came first on the same watch.
    e2e.create_host(kube_api, ns, "witness", secret="bmc")
    e2e.wait_until(lambda: e2e.state(e2e.get_host(kube_api, ns, "witness")) == "available",
                   timeout_s=60, what="a later host available (the barrier)")
    host = e2e.get_host(kube_api, ns, "paused")
    assert e2e.state(host) == ""
    assert not host["metadata"].get("finalizers")
    assert host["metadata"]["resourceVersion"] == version  # not written to at all
    e2e.patch_host(kube_api, ns, "paused",
                   {"metadata": {"annotations": {"baremetalhost.metal3.io/paused": None}}})
    e2e.wait_until(lambda: e2e.state(e2e.get_host(kube_api, ns, "paused")) == "available",
                   timeout_s=60, what="available after unpausing")


def test_detached_host_is_detached_then_deleted_without_deprovisioning(
    manager: e2e.ManagerProcess, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    ns, name = kube_namespace, "det"
    e2e.create_secret(kube_api, ns, "bmc")
    e2e.create_host(kube_api, ns, name, secret="bmc")
    e2e.wait_until(lambda: e2e.state(e2e.get_host(kube_api, ns, name)) == "available",
                   timeout_s=60, what="available")
    e2e.patch_host(kube_api, ns, name,
                   {"metadata": {"annotations": {"baremetalhost.metal3.io/detached": ""}}})

    def detached() -> bool:
        status = e2e.get_host(kube_api, ns, name).get("status") or {}
        return status.get("operationalStatus") == "detached"

    e2e.wait_until(detached, timeout_s=30, what="operationalStatus detached")
    assert e2e.state(e2e.get_host(kube_api, ns, name)) == "available"
    # A detached host is deleted straight away (no power-off, no deprovisioning).
    e2e.hosts_api(kube_api).delete_namespaced_custom_object(
        e2e.GROUP, e2e.VERSION, ns, e2e.PLURAL, name
    )
    e2e.wait_until(lambda: not e2e.host_exists(kube_api, ns, name), timeout_s=30,
                   what="detached host deleted")
