"""The emulator's EventService: subscriptions, and events really POSTed to their destinations.

A subscription (`POST /redfish/v1/EventService/Subscriptions`) keeps its Destination, Context,
EventTypes and HttpHeaders; as Redfish requires, HttpHeaders are never shown back on a GET.
`Events` delivers, on one worker thread per emulator, a Redfish Event document to every
subscription whose EventTypes include the event's type, with its Context and its HttpHeaders on
the request, retrying `retry_attempts` times `retry_interval_s` apart when the destination
does not answer 2xx (Redfish DeliveryRetryAttempts / DeliveryRetryIntervalSeconds).

What raises events (all EventType "Alert", the type Ironic and BMO subscribe to):
- `POST /redfish/v1/EventService/Actions/EventService.SubmitTestEvent` (the Redfish action for
  testing a subscription; its body may set EventType, MessageId, Message, Severity,
  OriginOfCondition);
- a power action on a system (ResourceEvent.1.0.ResourceChanged, origin the system);
- a firmware update task ending (TaskEvent.1.0.TaskCompletedOK / TaskAborted, origin the task),
  noticed by the worker while it is idle.

Every delivery attempt is recorded in `Events.deliveries` (destination, HTTP status or error),
so a test or the lab can tell a delivery that failed from one never made.
"""

import collections
import datetime
import itertools
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import flask
import requests
from sushy_tools import error as fishy  # type: ignore[import-untyped]

from metalcubed.simulators.redfish import views

SERVICE = "/redfish/v1/EventService"
SUBSCRIPTIONS = SERVICE + "/Subscriptions"
SUBMIT_TEST_EVENT = SERVICE + "/Actions/EventService.SubmitTestEvent"
EVENT_TYPES = ("Alert", "StatusChange", "ResourceUpdated", "ResourceAdded", "ResourceRemoved")
MAX_HEADERS = 32
"""At most this many HttpHeaders per subscription (a BMC's storage is small)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    id: str
    destination: str
    context: str = ""
    protocol: str = "Redfish"
    event_types: tuple[str, ...] = ("Alert",)
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent with every event; never shown on a GET."""

    def document(self) -> dict[str, Any]:
        return {
            "@odata.type": "#EventDestination.v1_7_0.EventDestination",
            "@odata.id": f"{SUBSCRIPTIONS}/{self.id}", "Id": self.id,
            "Name": "Event Subscription", "Destination": self.destination,
            "Context": self.context, "Protocol": self.protocol,
            "EventTypes": list(self.event_types), "HttpHeaders": [],
            "SubscriptionType": "RedfishEvent",
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    event_type: str
    message_id: str
    message: str
    origin: str = ""
    severity: str = "OK"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One attempt to deliver one event to one subscription."""

    subscription_id: str
    destination: str
    event_id: str
    attempt: int
    status: int | None
    """The destination's HTTP status; None when it did not answer."""
    error: str = ""


class Events:
    """One emulator's subscriptions and its delivery worker (started and stopped with it)."""

    def __init__(self, *, retry_attempts: int = 3, retry_interval_s: float = 1.0,
                 timeout_s: float = 5.0, verify_tls: bool | str = True,
                 idle: Callable[[], Iterable[Event]] | None = None,
                 on_first_subscription: Callable[[], None] | None = None) -> None:
        self.retry_attempts = retry_attempts
        self.retry_interval_s = retry_interval_s
        self.timeout_s = timeout_s
        self.verify_tls = verify_tls
        """For https destinations: verify (True), don't (False) or a CA bundle path."""
        self._idle = idle
        """Polled by the worker while idle and someone subscribes: events noticed meanwhile."""
        self._on_first = on_first_subscription
        """Called when the first subscription arrives: what happened before is no event."""
        self.lock = threading.Lock()
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: collections.deque[Delivery] = collections.deque(maxlen=10000)
        self._ids = itertools.count(1)
        self._queue: queue.Queue[tuple[Subscription, dict[str, Any], str, int] | None] = (
            queue.Queue())
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    # -- subscriptions ---------------------------------------------------------------------------

    def subscribe(self, request: Mapping[str, Any]) -> Subscription:
        """A subscription from a POST body; BadRequest naming the property at fault."""
        destination = request.get("Destination")
        if not isinstance(destination, str) or not destination.startswith(
                ("http://", "https://")):
            raise fishy.BadRequest("Destination must be an http(s) URL")
        protocol = request.get("Protocol", "Redfish")
        if protocol != "Redfish":
            raise fishy.BadRequest(f"Protocol {protocol} is not supported (Redfish)")
        context = request.get("Context", "")
        if not isinstance(context, str):
            raise fishy.BadRequest("Context must be a string")
        types = request.get("EventTypes", ["Alert"])
        if not isinstance(types, list) or not all(t in EVENT_TYPES for t in types):
            raise fishy.BadRequest(f"EventTypes must list some of {', '.join(EVENT_TYPES)}")
        sub = Subscription(id=str(uuid.uuid4()), destination=destination, context=context,
                           protocol=protocol, event_types=tuple(types) or ("Alert",),
                           headers=_headers(request.get("HttpHeaders", [])))
        with self.lock:
            first = not self.subscriptions
            self.subscriptions[sub.id] = sub
        if first and self._on_first is not None:
            self._on_first()
        return sub

    def unsubscribe(self, sub_id: str) -> bool:
        with self.lock:
            return self.subscriptions.pop(sub_id, None) is not None

    # -- delivery --------------------------------------------------------------------------------

    def publish(self, event: Event) -> int:
        """Queue `event` for every subscription taking its type; how many deliveries queued."""
        with self.lock:
            subs = [s for s in self.subscriptions.values() if event.event_type in s.event_types]
        event_id = str(next(self._ids))
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        for sub in subs:
            doc = {
                "@odata.type": "#Event.v1_7_0.Event", "Id": event_id, "Name": "Event Array",
                "Context": sub.context,
                "Events": [{
                    "EventType": event.event_type, "EventId": event_id,
                    "EventTimestamp": now, "Severity": event.severity,
                    "MessageSeverity": event.severity, "Message": event.message,
                    "MessageId": event.message_id, "MessageArgs": [],
                    **({"OriginOfCondition": {"@odata.id": event.origin}}
                       if event.origin else {}),
                }],
            }
            self._queue.put((sub, doc, event_id, 1))
        return len(subs)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="redfish-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1)
        self._thread = None
        self._session.close()

    def _run(self) -> None:
        retries: list[tuple[float, tuple[Subscription, dict[str, Any], str, int]]] = []
        while not self._stopping.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                item = None
                self._on_idle()
            now = time.monotonic()
            due = [r for r in retries if r[0] <= now]
            retries = [r for r in retries if r[0] > now]
            work = [w for _, w in due] + ([item] if item is not None else [])
            for sub, doc, event_id, attempt in work:
                if self._stopping.is_set():
                    return
                if not self._deliver(sub, doc, event_id, attempt) \
                        and attempt < self.retry_attempts:
                    retries.append((time.monotonic() + self.retry_interval_s,
                                    (sub, doc, event_id, attempt + 1)))

    def _on_idle(self) -> None:
        if self._idle is None:
            return
        with self.lock:
            if not self.subscriptions:
                return
        for event in self._idle():
            self.publish(event)

    def _deliver(self, sub: Subscription, doc: dict[str, Any], event_id: str,
                 attempt: int) -> bool:
        with self.lock:
            live = sub.id in self.subscriptions
        if not live:
            return True  # deleted meanwhile: nothing to deliver to
        headers = {"Content-Type": "application/json", **sub.headers}
        try:
            rsp = self._session.post(sub.destination, json=doc, headers=headers,
                                     timeout=self.timeout_s, verify=self.verify_tls)
        except requests.RequestException as err:
            self._record(sub, event_id, attempt, None, type(err).__name__)
            return False
        self._record(sub, event_id, attempt, rsp.status_code, "")
        return 200 <= rsp.status_code < 300

    def _record(self, sub: Subscription, event_id: str, attempt: int, status: int | None,
                error: str) -> None:
        with self.lock:
            self.deliveries.append(Delivery(subscription_id=sub.id, destination=sub.destination,
                                            event_id=event_id, attempt=attempt, status=status,
                                            error=error))


def _headers(value: object) -> dict[str, str]:
    """Redfish HttpHeaders: a list of one-entry objects ({"X-Token": "v"}) or one object."""
    items: list[tuple[object, object]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        for entry in value:
            if not isinstance(entry, dict):
                raise fishy.BadRequest("HttpHeaders must hold objects of name: value")
            items.extend(entry.items())
    else:
        raise fishy.BadRequest("HttpHeaders must be a list of objects")
    if len(items) > MAX_HEADERS:
        raise fishy.BadRequest(f"HttpHeaders: at most {MAX_HEADERS} headers")
    headers: dict[str, str] = {}
    for name, val in items:
        if not isinstance(name, str) or not isinstance(val, str) or not name \
                or any(c in name + val for c in "\r\n"):
            raise fishy.BadRequest("HttpHeaders: names and values must be one-line strings")
        headers[name] = val
    return headers


# --- views ----------------------------------------------------------------------------------------


def _service() -> flask.Response:
    em = views.current()
    return views.reply({
        "@odata.type": "#EventService.v1_5_0.EventService",
        "@odata.id": SERVICE, "Id": "EventService", "Name": "Event Service",
        "ServiceEnabled": True, "DeliveryRetryAttempts": em.events.retry_attempts,
        "DeliveryRetryIntervalSeconds": em.events.retry_interval_s,
        "EventTypesForSubscription": list(EVENT_TYPES),
        "Subscriptions": {"@odata.id": SUBSCRIPTIONS},
        "Actions": {"#EventService.SubmitTestEvent": {"target": SUBMIT_TEST_EVENT}},
    })


def _subscriptions() -> flask.Response:
    events = views.current().events
    if flask.request.method == "POST":
        sub = events.subscribe(views.body())
        return views.reply(sub.document(), 201, {"Location": f"{SUBSCRIPTIONS}/{sub.id}"})
    with events.lock:
        ids = list(events.subscriptions)
    return views.reply({
        "@odata.type": "#EventDestinationCollection.EventDestinationCollection",
        "@odata.id": SUBSCRIPTIONS, "Name": "Subscriptions", "Members@odata.count": len(ids),
        "Members": [{"@odata.id": f"{SUBSCRIPTIONS}/{i}"} for i in ids]})


def _subscription(sub_id: str) -> flask.Response:
    events = views.current().events
    if flask.request.method == "DELETE":
        if not events.unsubscribe(sub_id):
            raise fishy.NotFound(f"no subscription {sub_id}")
        return flask.Response(status=204)
    with events.lock:
        sub = events.subscriptions.get(sub_id)
    if sub is None:
        raise fishy.NotFound(f"no subscription {sub_id}")
    return views.reply(sub.document())


def _submit_test_event() -> flask.Response:
    request = flask.request.get_json(silent=True) or {}
    if not isinstance(request, dict):
        raise fishy.BadRequest("the request body must be a JSON object")
    event_type = request.get("EventType", "Alert")
    if event_type not in EVENT_TYPES:
        raise fishy.BadRequest(f"EventType must be one of {', '.join(EVENT_TYPES)}")
    origin = request.get("OriginOfCondition", "")
    if isinstance(origin, dict):
        origin = origin.get("@odata.id", "")
    fields = {"MessageId": request.get("MessageId", "Base.1.0.Success"),
              "Message": request.get("Message", "Test event"),
              "Severity": request.get("Severity", "OK"), "OriginOfCondition": origin}
    if not all(isinstance(v, str) for v in fields.values()):
        raise fishy.BadRequest("MessageId, Message, Severity and OriginOfCondition must be "
                               "strings")
    views.current().events.publish(Event(
        event_type=event_type, message_id=fields["MessageId"], message=fields["Message"],
        severity=fields["Severity"], origin=fields["OriginOfCondition"]))
    return flask.Response(status=204)


def install() -> None:
    """Register the views on the sushy-tools app (once, from `emulator.install`)."""
    views.add(SERVICE, "m3_event_service", _service)
    views.add(SUBSCRIPTIONS, "m3_subscriptions", _subscriptions, ("GET", "POST"))
    views.add(SUBSCRIPTIONS + "/<sub_id>", "m3_subscription", _subscription, ("GET", "DELETE"))
    views.add(SUBMIT_TEST_EVENT, "m3_submit_test_event", _submit_test_event, ("POST",))
