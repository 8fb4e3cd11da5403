"""PreprovisioningImage, BMCEventSubscription and DataImage through the whole system: objects
applied to a real kube-apiserver, `metalcubed manager --provisioner engine` (a subprocess, with
the manifests' RBAC-free admin kubeconfig) running their controllers, and a Redfish emulator on
127.0.0.1 as the hosts' BMC.

- a virtual-media host naming `<host>-network` gets a PreprovisioningImage, Ready, whose
  imageUrl (the manager's boot server) serves an ISO with the nmstate document in it, and that
  URL is what the engine put in the host's virtual CD to inspect it;
- a BMCEventSubscription gets a subscription id from the BMC, and an event the BMC sends
  arrives at a test HTTP server with the header from the user's Secret; deleting the object
  removes it from the BMC;
- a DataImage for an externally provisioned host goes into its virtual CD, and out on delete.
"""

import http.server
import json
import queue
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client as k8s

from metalcubed.controllers import bootiso
from metalcubed.controllers.kube import localcluster
from metalcubed.simulators import hostmodel
from metalcubed.simulators.redfish import emulator as redfish_emulator
from metalcubed.simulators.redfish import events as redfish_events
from tests.kube import test_e2e_engine_support as support
from tests.kube import test_e2e_support as e2e

pytestmark = pytest.mark.kube

GROUP, VERSION = "metal3.io", "v1alpha1"
NMSTATE = "interfaces:\n- name: eno1\n  type: ethernet\n  state: up\n"


@pytest.fixture
def receiver() -> Iterator[tuple[str, "queue.Queue[tuple[dict[str, str], dict[str, Any]]]"]]:
    got: queue.Queue[tuple[dict[str, str], dict[str, Any]]] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            got.put((dict(self.headers.items()), json.loads(self.rfile.read(length) or b"{}")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook/", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _objects(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


def _get(api: k8s.ApiClient, ns: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = _objects(api).get_namespaced_custom_object(
            GROUP, VERSION, ns, plural, name)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def _create(api: k8s.ApiClient, ns: str, plural: str, kind: str, name: str,
            spec: dict[str, Any]) -> None:
    _objects(api).create_namespaced_custom_object(GROUP, VERSION, ns, plural, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name},
        "spec": spec})


def _ready(image: dict[str, Any] | None) -> bool:
    conditions = ((image or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_side_objects_through_the_manager(
    kube_cluster: localcluster.Cluster, kube_api: k8s.ApiClient, kube_namespace: str,
    tmp_path: Path, receiver: tuple[str, "queue.Queue[tuple[dict[str, str], dict[str, Any]]]"],
) -> None:
    ns = kube_namespace
    hook_url, got = receiver
    images = support.Images().start()
    models = hostmodel.make_hosts(2)
    bmc_emulator = redfish_emulator.RedfishEmulator(models).start()
    manager = support.EngineManager(
        kube_cluster.kubeconfig, ns, tmp_path / "manager.log",
        ("--engine-poll-seconds", "1", "--engine-short-poll-seconds", "0.5",
         "--ramdisk-timeout-seconds", "3600"), images.env())
    core = k8s.CoreV1Api(kube_api)
    try:
        manager.start().wait_ready(timeout_s=60)
        e2e.create_secret(kube_api, ns, "bmc")
        core.create_namespaced_secret(ns, {"metadata": {"name": "worker-0-network"},
                                           "stringData": {"nmstate": NMSTATE}})
        e2e.create_host(kube_api, ns, "worker-0", secret="bmc",
                        bmc={"address": bmc_emulator.bmc_address(models[0],
                                                                 "redfish-virtualmedia"),
                             "credentialsName": "bmc"},
                        bootMACAddress=models[0].inventory.nics[0].mac,
                        preprovisioningNetworkDataName="worker-0-network")

        # --- PreprovisioningImage -----------------------------------------------------------
        e2e.wait_until(lambda: _ready(_get(kube_api, ns, "preprovisioningimages", "worker-0")),
                       timeout_s=60, what="PreprovisioningImage Ready")
        image = _get(kube_api, ns, "preprovisioningimages", "worker-0")
        assert image is not None
        status = image["status"]
        assert status["format"] == "iso" and status["networkData"]["name"] == "worker-0-network"
        assert status["imageUrl"].startswith(manager.boot_url + "/boot/")
        assert image["metadata"]["ownerReferences"][0]["name"] == "worker-0"
        # The engine boots the ramdisk to inspect from that very URL ...
        e2e.wait_until(lambda: models[0].media(hostmodel.MediaSlot.CD).image_url
                       == status["imageUrl"], timeout_s=60, what="the PPI's ISO in the CD")
        # ... and the ISO carries the network configuration.
        with urllib.request.urlopen(status["imageUrl"], timeout=30) as rsp:
            _, files = bootiso.read_files(rsp.read(), what="deploy ISO")
        assert files[bootiso.NMSTATE_FILE].decode() == NMSTATE

        # --- BMCEventSubscription ------------------------------------------------------------
        core.create_namespaced_secret(ns, {"metadata": {"name": "hook-auth"},
                                           "stringData": {"Authorization": "Bearer t0ken"}})
        _create(kube_api, ns, "bmceventsubscriptions", "BMCEventSubscription", "events", {
            "hostName": "worker-0", "destination": hook_url, "context": "rack-7",
            "httpHeadersRef": {"name": "hook-auth", "namespace": ns}})

        def subscribed() -> bool:
            sub = _get(kube_api, ns, "bmceventsubscriptions", "events") or {}
            return bool((sub.get("status") or {}).get("subscriptionID"))

        e2e.wait_until(subscribed, timeout_s=60, what="subscriptionID")
        auth = ("admin", "password")
        answer = requests.post(f"{bmc_emulator.endpoint}{redfish_events.SUBMIT_TEST_EVENT}",
                               json={"Message": "from the kube test"}, auth=auth, timeout=10)
        assert answer.status_code < 300, answer.text
        headers, body = got.get(timeout=30)  # a hang guard
        assert headers["Authorization"] == "Bearer t0ken" and body["Context"] == "rack-7"
        _objects(kube_api).delete_namespaced_custom_object(
            GROUP, VERSION, ns, "bmceventsubscriptions", "events")
        e2e.wait_until(lambda: _get(kube_api, ns, "bmceventsubscriptions", "events") is None,
                       timeout_s=60, what="subscription deleted")
        listed = requests.get(f"{bmc_emulator.endpoint}{redfish_events.SUBSCRIPTIONS}",
                              auth=auth, timeout=10).json()["Members"]
        assert listed == []

        # --- DataImage on an externally provisioned host ----------------------------------
        e2e.create_host(kube_api, ns, "worker-1", secret="bmc",
                        bmc={"address": bmc_emulator.bmc_address(models[1],
                                                                 "redfish-virtualmedia"),
                             "credentialsName": "bmc"},
                        bootMACAddress=models[1].inventory.nics[0].mac,
                        externallyProvisioned=True)
        iso_url = f"{images.deploy_iso_url}"
        _create(kube_api, ns, "dataimages", "DataImage", "worker-1", {"url": iso_url})
        e2e.wait_until(lambda: models[1].media(hostmodel.MediaSlot.CD).image_url == iso_url,
                       timeout_s=90, what="the DataImage in worker-1's CD")

        def attached() -> bool:
            found = _get(kube_api, ns, "dataimages", "worker-1") or {}
            return ((found.get("status") or {}).get("attachedImage") or {}).get("url") == iso_url

        e2e.wait_until(attached, timeout_s=30, what="status.attachedImage")
        _objects(kube_api).delete_namespaced_custom_object(GROUP, VERSION, ns, "dataimages",
                                                           "worker-1")
        e2e.wait_until(lambda: _get(kube_api, ns, "dataimages", "worker-1") is None,
                       timeout_s=60, what="DataImage deleted")
        assert not models[1].media(hostmodel.MediaSlot.CD).inserted
    except BaseException:
        print(manager.log())
        for plural, name in (("baremetalhosts", "worker-1"), ("dataimages", "worker-1")):
            found = _get(kube_api, ns, plural, name) or {}
            print(plural, json.dumps(found.get("status"), default=str)[:3000])
        raise
    finally:
        manager.kill()
        bmc_emulator.stop()
        images.stop()
