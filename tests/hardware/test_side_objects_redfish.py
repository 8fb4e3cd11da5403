"""BMCEventSubscription and DataImage controllers against the Redfish emulator, over real HTTP.

The controllers run over the memory store with the provisioning engine and the production BMC
drivers (sushy); the emulator is H4's sushy-tools emulator on 127.0.0.1. An event subscription
is checked end to end: the controller creates it on the BMC with the headers from the user's
Secret, the BMC is asked for a test event, and an HTTP server of the test receives the POST with
those headers and the subscription's Context.
"""

import base64
import http.server
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from metalcubed.controllers import agent_client, lookup, manager, memory
from metalcubed.core import memory_store, outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import bmceventsubscription as bes
from metalcubed.core.api import change, meta
from metalcubed.core.api import dataimage as di
from metalcubed.core.provisioning import engine
from metalcubed.core.reconcilers import bmceventsubscription, dataimage
from metalcubed.simulators import hostmodel
from metalcubed.simulators.ipmi import emulator as ipmi_emulator
from metalcubed.simulators.redfish import emulator as redfish_emulator
from metalcubed.simulators.redfish import events as redfish_events
from tests.hardware.conftest import CREDS

pytestmark = pytest.mark.hardware

NS = "lab"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@pytest.fixture
def receiver() -> Iterator[tuple[str, "queue.Queue[Received]"]]:
    """An HTTP server on 127.0.0.1 that keeps every POST it gets; yields (URL, queue)."""
    got: queue.Queue[Received] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            got.put(Received(self.path, dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/events/", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Lab:
    """A memory store with one host per BMC address, and the engine as provisioner factory."""

    def __init__(self) -> None:
        self.clock = memory.WallClock()
        self.store = memory_store.MemoryStore(clock=self.clock)
        self.engine = engine.Engine(
            drivers=manager.production_drivers(), agents=agent_client.HttpAgent(timeout_s=5),
            nodes_port=lookup.LockedNodeTable(clock=self.clock), clock=self.clock)
        self.store.create(meta.Secret(
            metadata=meta.ObjectMeta(name="bmc-creds", namespace=NS),
            data={"username": _b64(CREDS.username), "password": _b64(CREDS.password)}))
        self.events: list[tuple[str, str]] = []

    def record(self, obj: meta.Resource, *, type: Any, reason: str, message: str) -> None:
        self.events.append((reason, message))

    def host(self, name: str, address: str, *, state: bmh.ProvisioningState) -> bmh.BareMetalHost:
        host = self.store.create(bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name=name, namespace=NS),
            spec=bmh.BareMetalHostSpec(online=True, bmc=bmh.BMCDetails(
                address=address, credentials_name="bmc-creds"))))
        status = bmh.BareMetalHostStatus(provisioning=bmh.ProvisionStatus(state=state))
        return self.store.update_status(change.replace(host, {"status": status}))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def lab() -> Lab:
    return Lab()


@pytest.fixture
def model() -> hostmodel.HostModel:
    return hostmodel.make_hosts(1)[0]


@pytest.fixture
def emulator(model: hostmodel.HostModel) -> Iterator[redfish_emulator.RedfishEmulator]:
    with redfish_emulator.RedfishEmulator([model]) as running:
        yield running


# --- BMCEventSubscription --------------------------------------------------------------------


def test_a_subscription_created_by_the_controller_delivers_events_with_its_headers(
    lab: Lab, emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel,
    receiver: tuple[str, "queue.Queue[Received]"],
) -> None:
    url, got = receiver
    address = emulator.bmc_address(model, "redfish")
    lab.host("worker-0", address, state=bmh.ProvisioningState.PROVISIONED)
    lab.store.create(meta.Secret(metadata=meta.ObjectMeta(name="hook-auth", namespace=NS),
                                 data={"Authorization": _b64("Bearer t0ken")}))
    key = lab.store.create(bes.BMCEventSubscription(
        metadata=meta.ObjectMeta(name="worker-0-events", namespace=NS),
        spec=bes.BMCEventSubscriptionSpec(
            host_name="worker-0", destination=url, context="rack-7",
            http_headers_ref=meta.SecretReference(name="hook-auth", namespace=NS)))).key
    reconciler = bmceventsubscription.BMCEventSubscriptionReconciler(
        store=lab.store, provisioner_factory=lab.engine, events=lab)

    assert reconciler.reconcile(key).is_done
    sub = lab.store.get(bes.BMCEventSubscription, key)
    assert sub.status.error == "" and sub.status.subscription_id
    listed = requests.get(f"{emulator.endpoint}{redfish_events.SUBSCRIPTIONS}", auth=(
        CREDS.username, CREDS.password), timeout=10).json()["Members"]
    assert [m["@odata.id"].rsplit("/", 1)[-1] for m in listed] == [sub.status.subscription_id]

    answer = requests.post(f"{emulator.endpoint}{redfish_events.SUBMIT_TEST_EVENT}",
                           json={"Message": "hello from the test"},
                           auth=(CREDS.username, CREDS.password), timeout=10)
    assert answer.status_code < 300, answer.text
    event = got.get(timeout=30)  # a hang guard: the POST arrives well before
    assert event.path == "/events/"
    assert event.headers["Authorization"] == "Bearer t0ken"
    assert event.body["Context"] == "rack-7"
    assert event.body["Events"][0]["Message"] == "hello from the test"

    lab.store.delete(bes.BMCEventSubscription, key)
    assert reconciler.reconcile(key).is_done
    with pytest.raises(outcome.NotFound):
        lab.store.get(bes.BMCEventSubscription, key)
    listed = requests.get(f"{emulator.endpoint}{redfish_events.SUBSCRIPTIONS}", auth=(
        CREDS.username, CREDS.password), timeout=10).json()["Members"]
    assert listed == []


def test_an_ipmi_host_gets_the_drivers_error_in_status(lab: Lab) -> None:
    with ipmi_emulator.IpmiEmulator(hostmodel.make_hosts(1)) as ipmi:
        address = ipmi.bmc_address(ipmi.hosts[0])
        lab.host("worker-1", address, state=bmh.ProvisioningState.PROVISIONED)
        key = lab.store.create(bes.BMCEventSubscription(
            metadata=meta.ObjectMeta(name="ipmi-events", namespace=NS),
            spec=bes.BMCEventSubscriptionSpec(host_name="worker-1",
                                              destination="http://127.0.0.1:9/x"))).key
        reconciler = bmceventsubscription.BMCEventSubscriptionReconciler(
            store=lab.store, provisioner_factory=lab.engine, events=lab)
        with pytest.raises(outcome.TransientError):
            reconciler.reconcile(key)
    error = lab.store.get(bes.BMCEventSubscription, key).status.error
    assert error.startswith("failed to create a subscription: ")
    assert "does not support BMC event subscriptions" in error


# --- DataImage ---------------------------------------------------------------------------------


def test_a_data_image_goes_into_the_virtual_cd_and_out_on_delete(
    lab: Lab, emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel,
    image_server: str,
) -> None:
    url = f"{image_server}/ramdisk.iso"
    lab.host("worker-0", emulator.bmc_address(model, "redfish-virtualmedia"),
             state=bmh.ProvisioningState.PROVISIONED)
    key = lab.store.create(di.DataImage(metadata=meta.ObjectMeta(name="worker-0", namespace=NS),
                                        spec=di.DataImageSpec(url=url))).key
    reconciler = dataimage.DataImageReconciler(
        store=lab.store, provisioner_factory=lab.engine, clock=lab.clock, events=lab)
    for _ in range(6):
        if reconciler.reconcile(key).is_done:
            break
    image = lab.store.get(di.DataImage, key)
    assert image.status.attached_image.url == url and image.status.error.count == 0
    assert model.media(hostmodel.MediaSlot.CD).image_url == url

    lab.store.delete(di.DataImage, key)
    for _ in range(6):
        if reconciler.reconcile(key).is_done:
            break
    with pytest.raises(outcome.NotFound):
        lab.store.get(di.DataImage, key)
    assert not model.media(hostmodel.MediaSlot.CD).inserted


def test_a_data_image_url_that_404s_is_an_error_in_status(
    lab: Lab, emulator: redfish_emulator.RedfishEmulator, model: hostmodel.HostModel,
    image_server: str,
) -> None:
    lab.host("worker-0", emulator.bmc_address(model, "redfish-virtualmedia"),
             state=bmh.ProvisioningState.PROVISIONED)
    key = lab.store.create(di.DataImage(
        metadata=meta.ObjectMeta(name="worker-0", namespace=NS),
        spec=di.DataImageSpec(url=f"{image_server}/missing.iso"))).key
    reconciler = dataimage.DataImageReconciler(
        store=lab.store, provisioner_factory=lab.engine, clock=lab.clock, events=lab)
    results = [reconciler.reconcile(key) for _ in range(3)]
    error = lab.store.get(di.DataImage, key).status.error
    assert error.count == 1 and "failed to attach the data image" in error.message
    assert "404" in error.message
    assert results[-1].requeue_after_s is not None
    assert results[-1].requeue_after_s >= dataimage.UPDATE_DELAY_S
    assert not model.media(hostmodel.MediaSlot.CD).inserted
