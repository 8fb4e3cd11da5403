"""`ports.Store` over a real kube-apiserver, through the official `kubernetes` client.

Why: the reconcilers run unchanged against the memory store (fleet model, lab) and against a
cluster; this adapter is the cluster side and passes the same contract suite
(core/testing/store_contract.py, run by tests/kube/test_store_contract.py).

It is generic: any `meta.Resource` subclass works from its class facts (API_VERSION, PLURAL,
NAMESPACED, HAS_STATUS) with no per-kind code, the way client-go's dynamic client works. Paths
are built from those facts and sent with `ApiClient.call_api` (the transport, authentication and
TLS of the official client; its typed models are not used, so a custom resource and a Secret
take the same path). Objects cross the boundary as wire dicts: `Resource.to_wire()` out,
`Resource.from_wire()` in.

Errors (HTTP status -> outcome):
    404 NotFound (of the Namespace, when a write names one that does not exist) ·
    409 Conflict (stale resourceVersion, AlreadyExists) · 410 Gone ·
    422 Invalid, with (field, message) per cause of the Status details (CRD schema, admission) ·
    400 Invalid (a malformed request, e.g. a label selector: retrying cannot help) ·
    429 TransientError with the server's Retry-After · anything else, connection errors
    included: TransientError, chained to the client's exception.

Writes: `update` is a PUT of the main resource (the server ignores status there for kinds with
a status subresource), `update_status` a PUT of `/status`. Both carry the object's
resourceVersion, so a stale write is a 409. `delete` uses the server's default propagation
(background): dependents are removed by the garbage collector, asynchronously.

Watches are reflectors. `watch()` does its first request on the caller's thread (so a missing
CRD, a forbidden kind or a bad resourceVersion raise there), then a daemon thread delivers
events and keeps the stream alive: when the server ends it (timeoutSeconds) or the connection
drops, it resumes from the last resourceVersion seen (bookmarks included); when that version
has been compacted (410 Gone mid-stream) it relists and delivers the difference against what it
has delivered so far (ADDED for new objects, MODIFIED for changed ones, DELETED for vanished
ones), so the caller never sees the gap and never has to relist itself. A watch started with
`resource_version=None` has delivered every object, so that difference is exact; one started
from a given version knows only the objects it saw, so an object deleted during a gap that it
never saw produces no event (informers start with None, as `list+watch` does). A version that
is already too old when `watch()` is called raises Gone to the caller.
"""

import builtins
import contextlib
import json
import logging
import random
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import pydantic
import urllib3
from kubernetes import client as k8s

from metalcubed.controllers.kube import ownerbatch
from metalcubed.core import outcome, ports
from metalcubed.core.api import meta

R = TypeVar("R", bound=meta.Resource)

log = logging.getLogger(__name__)

_JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
_OBJECT = {200: "object", 201: "object", 202: "object"}


def _api_prefix(kind: type[meta.Resource]) -> str:
    version = kind.API_VERSION
    return f"/apis/{version}" if "/" in version else f"/api/{version}"


def collection_path(kind: type[meta.Resource], namespace: str | None) -> str:
    """The REST path of a kind's collection, in one namespace or across all of them."""
    if kind.NAMESPACED and namespace:
        return f"{_api_prefix(kind)}/namespaces/{urllib.parse.quote(namespace)}/{kind.PLURAL}"
    return f"{_api_prefix(kind)}/{kind.PLURAL}"


def item_path(kind: type[meta.Resource], key: meta.ObjectKey) -> str:
    return f"{collection_path(kind, key.namespace)}/{urllib.parse.quote(key.name)}"


def _object_name(raw: Any) -> str:
    """`namespace/name` of a wire object that may not parse (either part may be missing)."""
    metadata = raw.get("metadata") if isinstance(raw, Mapping) else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    parts = [str(metadata.get(part) or "")[:253] for part in ("namespace", "name")]
    return "/".join(part for part in parts if part) or "(unnamed)"


def _problems(exc: pydantic.ValidationError) -> str:
    """Field paths and messages of a parse failure, without the input values: pydantic's own
    text quotes them (`input_value=...`), which for a Secret is its data."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(object)'}: {e['msg']}" for e in errors)


def _status_body(exc: k8s.ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def translate(
    exc: k8s.ApiException, kind: type[meta.Resource], key: str
) -> outcome.MetalcubedError:
    """The outcome error for an API error response (see the module docstring)."""
    status = _status_body(exc)
    message = str(status.get("message") or exc.reason or "")
    causes = [
        (str(c.get("field", "")), str(c.get("message", "")))
        for c in (status.get("details") or {}).get("causes") or []
    ]
    code = exc.status
    details = status.get("details") or {}
    if code == 404 and details.get("kind") == "namespaces":
        # A write into a namespace that does not exist (NamespaceLifecycle admission).
        return outcome.NotFound("Namespace", str(details.get("name") or ""))
    if code == 404:
        return outcome.NotFound(kind.KIND, key)
    if code == 409:
        return outcome.Conflict(kind.KIND, key, str(status.get("reason") or "Conflict") + ": "
                                + message)
    if code == 410:
        return outcome.Gone(key)
    if code in (400, 422):
        return outcome.Invalid(kind.KIND, key, causes or [("", message)])
    retry_after: float | None = None
    if code == 429 and exc.headers:
        try:
            retry_after = float(exc.headers.get("Retry-After", ""))
        except ValueError:
            retry_after = None
    return outcome.TransientError(
        f"{kind.KIND} {key}: HTTP {code} {exc.reason}: {message}".rstrip(": "),
        retry_after_s=retry_after,
    )


class K8sStore:
    """The Store port over the API server. Thread-safe (the client's pool is)."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        request_timeout_s: float = 30.0,
        watch_timeout_s: float = 300.0,
    ) -> None:
        """`api_client`: an authenticated `kubernetes.client.ApiClient` (owned by the caller).

        `watch_timeout_s`: how long the server keeps one watch request open (jittered up to
        twice that, as client-go does) before the reflector reconnects.
        """
        self._api = api_client
        self._timeout_s = request_timeout_s
        self._watch_timeout_s = watch_timeout_s
        self._owner_batches = ownerbatch.OwnerBatches()

    # --- plumbing --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        kind: type[meta.Resource],
        key: str,
        body: Mapping[str, Any] | None = None,
        query: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        try:
            data = self._api.call_api(
                path,
                method,
                query_params=list(query),
                header_params=dict(_JSON_HEADERS),
                body=dict(body) if body is not None else None,
                response_types_map=_OBJECT,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=True,
                _request_timeout=self._timeout_s,
            )
        except k8s.ApiException as exc:
            raise translate(exc, kind, key) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise outcome.TransientError(f"{kind.KIND} {key}: {method} {path}: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def _parse(self, kind: type[R], data: Mapping[str, Any], key: str) -> R:
        try:
            return kind.from_wire(data)
        except pydantic.ValidationError as exc:
            causes = [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
            raise outcome.Invalid(kind.KIND, key, causes) from exc

    def _body(self, obj: meta.Resource) -> dict[str, Any]:
        return obj.to_wire()

    @staticmethod
    def _key_text(kind: type[meta.Resource], key: meta.ObjectKey) -> str:
        return str(key) if kind.NAMESPACED else key.name

    # --- Store ------------------------------------------------------------------------------

    def get(self, kind: type[R], key: meta.ObjectKey) -> R:
        text = self._key_text(kind, key)
        return self._parse(kind, self._call("GET", item_path(kind, key), kind=kind, key=text), text)

    def list(
        self, kind: type[R], *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[R]:
        items, _rv = self._list(kind, namespace=namespace, label_selector=label_selector)
        return items

    def _list(
        self, kind: type[R], *, namespace: str | None, label_selector: str | None = None
    ) -> tuple[builtins.list[R], str]:
        """The objects (sorted by namespace and name, as etcd returns them) and the list's RV."""
        query = [("labelSelector", label_selector)] if label_selector else []
        where = namespace or "*"
        data = self._call(
            "GET", collection_path(kind, namespace), kind=kind, key=where, query=query
        )
        items: builtins.list[R] = []
        for raw in data.get("items") or []:
            try:
                items.append(kind.from_wire(raw))
            except pydantic.ValidationError as exc:
                log.error("skipping %s %s that does not parse: %s", kind.KIND,
                          _object_name(raw), _problems(exc))
        return items, str((data.get("metadata") or {}).get("resourceVersion") or "")

    def create(self, obj: R) -> R:
        kind = type(obj)
        text = self._key_text(kind, obj.key) or f"{obj.metadata.namespace}/"
        if obj.metadata.resource_version:
            # The server answers 500 ("resourceVersion should not be set on objects to be
            # created"): no retry can succeed, so it is bad input.
            raise outcome.Invalid(
                kind.KIND, text, [("metadata.resourceVersion", "must not be set on create")]
            )
        namespace = obj.metadata.namespace if kind.NAMESPACED else None
        data = self._call(
            "POST", collection_path(kind, namespace), kind=kind, key=text, body=self._body(obj)
        )
        return self._parse(kind, data, text)

    def update(self, obj: R) -> R:
        kind = type(obj)
        text = self._key_text(kind, obj.key)
        data = self._call("PUT", item_path(kind, obj.key), kind=kind, key=text,
                          body=self._body(obj))
        return self._parse(kind, data, text)

    def update_status(self, obj: R) -> R:
        kind = type(obj)
        text = self._key_text(kind, obj.key)
        if not kind.HAS_STATUS:
            raise outcome.NotFound(kind.KIND, f"{text}/status")
        data = self._call("PUT", item_path(kind, obj.key) + "/status", kind=kind, key=text,
                          body=self._body(obj))
        return self._parse(kind, data, text)

    def add_owner(self, obj: R, owner: meta.OwnerReference) -> R:
        """Owners added to one object by concurrent callers go out together: one read and one
        checked write per batch (controllers/kube/ownerbatch.py says why)."""
        kind, key = type(obj), obj.key
        written = self._owner_batches.add(
            (kind, key), owner,
            lambda owners: ownerbatch.write_owners(
                lambda: self.get(kind, key), self.update, owners))
        return written  # type: ignore[return-value]

    def delete(self, kind: type[R], key: meta.ObjectKey) -> None:
        self._call("DELETE", item_path(kind, key), kind=kind, key=self._key_text(kind, key))

    def watch(
        self,
        kind: type[R],
        handler: Callable[[ports.WatchEvent[R]], None],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
    ) -> ports.Watch:
        if not kind.NAMESPACED:
            namespace = None
        watch = K8sWatch(self, kind, handler, namespace=namespace, label_selector=label_selector)
        watch.begin(resource_version)
        return watch

    # --- used by K8sWatch -------------------------------------------------------------------

    def _open_stream(
        self, kind: type[meta.Resource], namespace: str | None, resource_version: str,
        label_selector: str | None = None,
    ) -> urllib3.BaseHTTPResponse:
        timeout_s = int(self._watch_timeout_s * (1 + random.random()))
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_s)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        where = namespace or "*"
        try:
            resp = self._api.call_api(
                collection_path(kind, namespace),
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                # Connect quickly; reads may legitimately wait for the whole server timeout.
                _request_timeout=(self._timeout_s, timeout_s + 30),
            )
        except k8s.ApiException as exc:
            raise translate(exc, kind, where) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise outcome.TransientError(f"{kind.KIND} {where}: watch: {exc}") from exc
        assert isinstance(resp, urllib3.BaseHTTPResponse)
        return resp


class _Expired(Exception):
    """The watch's resourceVersion is gone (HTTP 410 or an ERROR event with code 410)."""


def _lines(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    pending = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


class K8sWatch(Generic[R]):
    """One reflector thread: list (when asked), watch, resume, relist on 410. See module doc."""

    _BACKOFF_MAX_S = 5.0
    _FIRST_EVENT_WAIT_S = 0.5
    """How long watch(resource_version=...) waits for the head of the stream."""

    def __init__(
        self,
        store: K8sStore,
        kind: type[R],
        handler: Callable[[ports.WatchEvent[R]], None],
        *,
        namespace: str | None,
        label_selector: str | None = None,
    ) -> None:
        self._store = store
        self._kind = kind
        self._handler = handler
        self._namespace = namespace
        self._selector = label_selector or None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: urllib3.BaseHTTPResponse | None = None
        self._known: dict[meta.ObjectKey, R] = {}
        self._rv = ""
        self._pending: list[ports.WatchEvent[R]] = []
        self._first: Iterator[bytes] | None = None
        self._synced = threading.Event()
        self._head_seen = threading.Event()
        self._committed = True
        """False only while begin() waits for the head of a stream started from a given
        version: a 410 then means Gone for the caller; otherwise it means relist."""
        self._gone = False
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{kind.KIND}-{namespace or 'all'}", daemon=True
        )

    # --- caller's thread --------------------------------------------------------------------

    def begin(self, resource_version: str | None) -> None:
        """First request on the caller's thread (errors raise here), then start the thread.

        From a given version, the server refuses one that is too old with an ERROR event at
        the head of the stream; we wait briefly for the head so that refusal reaches the caller
        as Gone. A later 410 is handled by relisting (see the module docstring).
        """
        if resource_version in (None, "", "0"):
            items, self._rv = self._store._list(self._kind, namespace=self._namespace,
                                                label_selector=self._selector)
            self._pending = [ports.WatchEvent(ports.WatchEventType.ADDED, o) for o in items]
            for obj in items:
                self._known[obj.key] = obj
            self._thread.start()
            return
        assert resource_version is not None
        self._rv = resource_version
        self._committed = False
        try:
            self._first = _lines(self._connect())
        except _Expired:
            raise outcome.Gone(resource_version) from None
        self._thread.start()
        self._head_seen.wait(self._FIRST_EVENT_WAIT_S)
        with self._lock:
            self._committed = True
            gone = self._gone
        if gone:
            self._thread.join(timeout=10)
            raise outcome.Gone(resource_version)

    def wait_synced(self, timeout_s: float) -> bool:
        """True once the initial state (ADDED for every listed object, when started without a
        resourceVersion) has reached the handler; False if that takes longer than timeout_s."""
        return self._synced.wait(timeout_s)

    def stop(self) -> None:
        """Stop delivering events (idempotent). Returns once the thread has finished, unless
        called from a handler (then the current event is the last)."""
        self._stopped.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            _interrupt(stream)
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(timeout=10)

    # --- the reflector thread ---------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.1
        self._deliver_all(self._pending)
        self._pending = []
        self._synced.set()
        lines, self._first = self._first, None
        while not self._stopped.is_set():
            try:
                if lines is None:
                    lines = _lines(self._connect())
                for line in lines:
                    if self._stopped.is_set():
                        return
                    self._on_line(line)
                    self._head_seen.set()
                    backoff = 0.1
                lines = None  # the server closed the stream (timeoutSeconds): resume
            except _Expired:
                lines = None
                with self._lock:
                    if not self._committed:  # refused at once: begin() raises Gone
                        self._gone = True
                        self._head_seen.set()
                        return
                try:
                    self._relist()
                except outcome.MetalcubedError as exc:
                    self._pause(f"relist failed: {exc}", backoff)
                    backoff = min(backoff * 2, self._BACKOFF_MAX_S)
            except Exception as exc:  # any transport failure: resume later
                lines = None
                if self._stopped.is_set():
                    return
                self._pause(f"{type(exc).__name__}: {exc}", backoff)
                backoff = min(backoff * 2, self._BACKOFF_MAX_S)
        with self._lock:
            self._stream = None

    def _pause(self, why: str, delay_s: float) -> None:
        log.info("watch %s %s: %s; retrying in %.1fs", self._kind.KIND,
                 self._namespace or "*", why, delay_s)
        self._stopped.wait(delay_s)

    def _connect(self) -> urllib3.BaseHTTPResponse:
        log.debug("watch %s %s: (re)connecting from %s", self._kind.KIND,
                  self._namespace or "*", self._rv)
        try:
            resp = self._store._open_stream(self._kind, self._namespace, self._rv,
                                            self._selector)
        except outcome.Gone:
            raise _Expired() from None
        with self._lock:
            if self._stopped.is_set():
                _interrupt(resp)
            self._stream = resp
        return resp

    def _on_line(self, line: bytes) -> None:
        event = json.loads(line)
        etype = event.get("type")
        raw = event.get("object") or {}
        if etype == "ERROR":
            if raw.get("code") == 410:
                raise _Expired()
            raise outcome.TransientError(f"watch error: {raw.get('message') or raw}")
        rv = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        if etype == "BOOKMARK":
            log.debug("watch %s %s: bookmark at %s", self._kind.KIND, self._namespace or "*", rv)
            self._rv = rv or self._rv
            return
        try:
            obj = self._kind.from_wire(raw)
        except pydantic.ValidationError as exc:
            log.error("watch %s: skipping %s that does not parse: %s", self._kind.KIND,
                      _object_name(raw), _problems(exc))
            self._rv = rv or self._rv
            return
        kind = ports.WatchEventType(etype)
        if kind is ports.WatchEventType.DELETED:
            self._known.pop(obj.key, None)
        else:
            self._known[obj.key] = obj
        self._rv = rv or self._rv
        self._deliver(ports.WatchEvent(kind, obj))

    def _relist(self) -> None:
        items, rv = self._store._list(self._kind, namespace=self._namespace,
                                      label_selector=self._selector)
        log.info("watch %s %s: resourceVersion %s expired; relisted at %s",
                 self._kind.KIND, self._namespace or "*", self._rv, rv)
        events = relist_events(self._known, items)
        self._known = {obj.key: obj for obj in items}
        self._rv = rv
        self._deliver_all(events)

    def _deliver_all(self, events: Sequence[ports.WatchEvent[R]]) -> None:
        for event in events:
            self._deliver(event)

    def _deliver(self, event: ports.WatchEvent[R]) -> None:
        if self._stopped.is_set():
            return
        try:
            self._handler(event)
        except Exception:  # a handler bug must not kill the watch
            log.exception("watch %s: handler failed on %s %s", self._kind.KIND,
                          event.type, event.object.key)


def relist_events(
    known: Mapping[meta.ObjectKey, R], items: Sequence[R]
) -> list[ports.WatchEvent[R]]:
    """The events that take a watcher from `known` (what it was told) to `items` (a fresh list).

    ADDED for new keys, MODIFIED when the resourceVersion differs (an object deleted and
    re-created under the same name included), DELETED (with the last known object) for keys
    no longer listed; in list order, deletions last.
    """
    events: list[ports.WatchEvent[R]] = []
    listed = set()
    for obj in items:
        listed.add(obj.key)
        old = known.get(obj.key)
        if old is None:
            events.append(ports.WatchEvent(ports.WatchEventType.ADDED, obj))
        elif old.metadata.resource_version != obj.metadata.resource_version:
            events.append(ports.WatchEvent(ports.WatchEventType.MODIFIED, obj))
    events.extend(
        ports.WatchEvent(ports.WatchEventType.DELETED, old)
        for key, old in known.items()
        if key not in listed
    )
    return events


def _socket_of(resp: urllib3.BaseHTTPResponse) -> socket.socket | None:
    conn = getattr(resp, "connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _interrupt(resp: urllib3.BaseHTTPResponse) -> None:
    """Unblock a thread reading `resp`: shut the socket down, then release the response."""
    sock = _socket_of(resp)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):  # closing a broken stream may fail in many ways
        resp.close()
