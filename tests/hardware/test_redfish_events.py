"""BMC event subscriptions end to end: the Redfish driver creates them on the emulator over real
HTTP, and the emulator really POSTs events to a receiver on 127.0.0.1 with the subscription's
HttpHeaders. Waits are for an event to arrive (bounded, failing loudly), never sleeps."""

import json
import queue
from collections.abc import Iterator

import pytest

from metalcubed.controllers import httpserve
from metalcubed.controllers.bmc.redfish import capabilities as rf
from metalcubed.core import bmc
from metalcubed.simulators import hostmodel
from metalcubed.simulators.redfish import emulator as redfish_emulator
from tests.hardware.conftest import redfish_access

pytestmark = pytest.mark.hardware
ARRIVAL_S = 10.0
"""How long to wait for a delivery before failing (a bound, not an expected duration)."""


class Receiver:
    """An event destination on 127.0.0.1 that records what it receives."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[str, dict[str, str], dict[str, object]]] = queue.Queue()
        self.fail_next = 0
        self.server = httpserve.HttpServer(self._handle, name="event-receiver")

    def _handle(self, request: httpserve.Request) -> httpserve.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.put((request.path, headers, json.loads(request.body)))
        if self.fail_next:
            self.fail_next -= 1
            return httpserve.Response(500, b"{}")
        return httpserve.Response(204)

    def next(self) -> tuple[str, dict[str, str], dict[str, object]]:
        try:
            return self.received.get(timeout=ARRIVAL_S)
        except queue.Empty:
            raise AssertionError(f"no event arrived within {ARRIVAL_S} s") from None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.server.start()
    try:
        yield r
    finally:
        r.server.stop()


@pytest.fixture
def ev_redfish(hosts: list[hostmodel.HostModel]) -> Iterator[redfish_emulator.RedfishEmulator]:
    with redfish_emulator.RedfishEmulator(hosts, hang_s=5.0,
                                          event_retry_interval_s=0.05) as emulator:
        yield emulator


def _submit(emulator: redfish_emulator.RedfishEmulator, **body: str) -> None:
    import requests

    rsp = requests.post(f"{emulator.endpoint}/redfish/v1/EventService/Actions/"
                        "EventService.SubmitTestEvent", json=body, auth=("admin", "password"),
                        timeout=5)
    assert rsp.status_code == 204, rsp.text


def test_test_event_reaches_the_destination_with_context_and_headers(
        ev_redfish, hosts, clients, receiver) -> None:
    access = redfish_access(ev_redfish, hosts[0])
    events = rf.RedfishEvents(clients)
    sub = events.subscribe(access, f"{receiver.server.url}/hooks/metal3", context="ns/host-0",
                           http_headers={"X-Hook-Token": "t0k3n", "X-Tenant": "blue"})
    listed = events.subscriptions(access)
    assert listed == (sub,) and sub.context == "ns/host-0"
    _submit(ev_redfish, Message="disk 3 predicted to fail", MessageId="Storage.1.0.Predict")
    path, headers, doc = receiver.next()
    assert path == "/hooks/metal3"
    assert (headers["x-hook-token"], headers["x-tenant"]) == ("t0k3n", "blue")
    assert doc["Context"] == "ns/host-0"
    (event,) = doc["Events"]  # type: ignore[misc]
    assert (event["EventType"], event["MessageId"], event["Message"]) == (
        "Alert", "Storage.1.0.Predict", "disk 3 predicted to fail")


def test_headers_are_never_shown_back(ev_redfish, hosts, clients, receiver) -> None:
    import requests

    access = redfish_access(ev_redfish, hosts[0])
    sub = rf.RedfishEvents(clients).subscribe(access, receiver.server.url,
                                              http_headers={"Authorization": "Bearer s3cret"})
    doc = requests.get(f"{ev_redfish.endpoint}/redfish/v1/EventService/Subscriptions/{sub.id}",
                       auth=("admin", "password"), timeout=5).json()
    assert "s3cret" not in json.dumps(doc)
    assert doc["HttpHeaders"] == []


def test_a_power_action_raises_an_event_naming_the_system(ev_redfish, hosts, clients,
                                                          receiver) -> None:
    access = redfish_access(ev_redfish, hosts[1])
    rf.RedfishEvents(clients).subscribe(access, receiver.server.url, context="c")
    rf.RedfishPower(clients).start_power_on(access)
    _, _, doc = receiver.next()
    (event,) = doc["Events"]  # type: ignore[misc]
    assert event["OriginOfCondition"] == {"@odata.id": f"/redfish/v1/Systems/{hosts[1].uuid}"}
    assert event["MessageId"] == "ResourceEvent.1.0.ResourceChanged"


def test_unsubscribed_destination_gets_nothing_more(ev_redfish, hosts, clients) -> None:
    gone, kept = Receiver(), Receiver()
    gone.server.start()
    kept.server.start()
    try:
        access = redfish_access(ev_redfish, hosts[0])
        events = rf.RedfishEvents(clients)
        first = events.subscribe(access, gone.server.url, context="gone")
        events.subscribe(access, kept.server.url, context="kept")
        events.unsubscribe(access, first.id)
        _submit(ev_redfish, Message="after")
        _, _, doc = kept.next()  # the barrier: the event has been delivered
        assert doc["Context"] == "kept"
        assert gone.received.empty()
        assert all(d.subscription_id != first.id for d in ev_redfish.events.deliveries)
    finally:
        gone.server.stop()
        kept.server.stop()


def test_delivery_is_retried_when_the_destination_fails(ev_redfish, hosts, clients,
                                                       receiver) -> None:
    receiver.fail_next = 1
    access = redfish_access(ev_redfish, hosts[0])
    rf.RedfishEvents(clients).subscribe(access, receiver.server.url)
    _submit(ev_redfish, Message="retry me")
    first = receiver.next()
    second = receiver.next()
    assert first[2]["Id"] == second[2]["Id"], "the same event, delivered again"
    # The first attempt was recorded before the second was made (the second's record may
    # still be on its way).
    first_record = ev_redfish.events.deliveries[0]
    assert (first_record.attempt, first_record.status) == (1, 500)


def test_a_bad_destination_is_refused_by_the_bmc(ev_redfish, hosts, clients) -> None:
    access = redfish_access(ev_redfish, hosts[0])
    with pytest.raises(bmc.BmcRejected) as info:
        rf.RedfishEvents(clients).subscribe(access, "ftp://hooks.example/x")
    assert info.value.status == 400
    assert "Destination must be an http(s) URL" in str(info.value)


def test_header_injection_is_refused(ev_redfish, hosts, clients, receiver) -> None:
    access = redfish_access(ev_redfish, hosts[0])
    events = rf.RedfishEvents(clients)
    with pytest.raises(bmc.BmcRejected) as info:
        events.subscribe(access, receiver.server.url,
                         http_headers={"X-Token": "a\r\nX-Admin: yes"})
    assert "one-line strings" in str(info.value)
    assert events.subscriptions(access) == ()
