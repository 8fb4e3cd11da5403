"""The manager's webhook server: AdmissionReview v1 (validating, defaulting) over HTTPS.

Why: a BareMetalHost the schema accepts can still break upstream's rules (a BMC address no
driver reads, an image URL with a forbidden scheme, a boot MAC changed after provisioning);
upstream BMO refuses those at the API server with a validating webhook, so `kubectl apply`
fails at once naming the problem instead of the host failing later. metalcubed serves the
same webhooks, at the same paths, from the manager (every replica: admission needs no Lease).

- One HTTPS server (TLS 1.2+; there is no plain-HTTP mode) dispatching on exact paths to
  handlers: `handler(body: dict) -> dict`, the decoded request body in, the response body out.
  The registry is open: `admission_handlers()` fills it from `core.api.validation.KINDS` (every
  kind whose entry has a `webhook`, at controller-runtime's path
  `/validate-<group with dots as dashes>-<version>-<kind lower case>`), and a ConversionReview
  handler (`conversion_handler`) can be registered at `/convert` for CRD conversion.
- Defaulting: upstream registers a defaulter for BareMetalHost that changes nothing, served at
  `/mutate-...` but not registered in its manifests; the same here (`mutating_handler`), with
  JSON patches computed when a kind brings a real defaulter.
- Bad requests never crash the server: a body that is not JSON, not an AdmissionReview v1, too
  large, of the wrong content type, or sent to an unknown path gets 400 (413, 404) with a
  message. A handler bug is answered as a denial (fail closed), logged with a traceback.
- The TLS context is swapped at run time (`set_tls`) when certificates rotate: each new
  connection takes the current one (controllers/kube/certs.py provides them).

Denials carry upstream's messages, each prefixed by its field path, aggregated as Go's
`kerrors.NewAggregate` prints them ("msg" for one, "[a, b]" for several); the API server
shows them as `admission webhook "baremetalhost.metal3.io" denied the request: ...`.
"""

import base64
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client as k8s

from metalcubed.controllers.kube import certs
from metalcubed.core import outcome
from metalcubed.core.api import ipam, validation

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]
"""A decoded JSON request body in, the JSON response body out; BadRequest for a 400."""

ADMISSION_VERSION = "admission.k8s.io/v1"
CONVERSION_VERSION = "apiextensions.k8s.io/v1"
MAX_BODY_BYTES = 8 * 1024 * 1024
"""An AdmissionReview holds the object and the old object, each at most the API server's 3 MiB
request limit; anything larger is not from the API server (413)."""
DEFAULT_PORT = 9443
"""Upstream's --webhook-port default (controller-runtime's webhook server)."""
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class BadRequest(ValueError):
    """A request body the handler cannot read: answered 400 with this message."""


# --- paths and upstream's registration facts ---------------------------------------------------


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def path_for(api_version: str, kind: str, *, mutating: bool = False) -> str:
    """controller-runtime's generated path: /validate-metal3-io-v1alpha1-baremetalhost."""
    group, version = _group_version(api_version)
    verb = "mutate" if mutating else "validate"
    return f"/{verb}-{group.replace('.', '-')}-{version}-{kind.lower()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """One webhook of a ValidatingWebhookConfiguration: upstream's facts for a kind."""

    api_version: str
    kind: str
    plural: str
    name: str
    path: str
    operations: tuple[str, ...] = ("CREATE", "UPDATE")
    failure_policy: str = "Fail"
    side_effects: str = "None"

    @property
    def group(self) -> str:
        return _group_version(self.api_version)[0]

    @property
    def version(self) -> str:
        return _group_version(self.api_version)[1]


UPSTREAM_DEFAULTERS = frozenset(
    {"BareMetalHost", "BMCEventSubscription", "DataImage", "HostFirmwareComponents"})
"""Kinds whose upstream webhook also registers a (no-op) defaulter, served at /mutate-...
(baremetal-operator 02aa5059e, internal/webhooks/metal3.io/v1alpha1/*_webhook.go)."""


UPSTREAM_NAME_PREFIX: Mapping[str, str] = {
    "infrastructure.cluster.x-k8s.io": "validation.",
    "ipam.metal3.io": "validation.",
}
"""CAPM3 and IPAM name their validating webhooks `validation.<kind>.<group>` (their
config/webhook/manifests.yaml: CAPM3 2f6d76b8, IPAM 1f5fa681); BMO names them
`<kind>.metal3.io`."""


def webhook_name(entry: validation.KindEntry) -> str:
    """Upstream's name of a kind's validating webhook."""
    return UPSTREAM_NAME_PREFIX.get(entry.group, "") + entry.webhook_name


def registrations(entries: Iterable[validation.KindEntry] | None = None) -> list[Registration]:
    """The validating webhooks to serve and register: every kind with admission rules
    (`validation.webhooks()`), with upstream's names, paths and operations."""
    return [
        Registration(api_version=e.api_version, kind=e.kind, plural=e.plural,
                     name=webhook_name(e), path=e.webhook_path,
                     operations=tuple(e.webhook_operations))
        for e in (entries if entries is not None else validation.webhooks())
        if e.webhook is not None and e.model is not None
    ]


# --- AdmissionReview ---------------------------------------------------------------------------


def _admission_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The `request` of an AdmissionReview v1 body; BadRequest naming what is wrong."""
    if body.get("apiVersion") != ADMISSION_VERSION or body.get("kind") != "AdmissionReview":
        raise BadRequest(f"expected an AdmissionReview of apiVersion {ADMISSION_VERSION}, got "
                         f"kind {body.get('kind')!r} apiVersion {body.get('apiVersion')!r}")
    request = body.get("request")
    if not isinstance(request, dict):
        raise BadRequest("request: Required value (an object)")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadRequest("request.uid: Required value (a string)")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise BadRequest(f"request.operation: Unsupported value: {operation!r}: supported "
                         f"values: {', '.join(OPERATIONS)}")
    for field in ("object", "oldObject"):
        value = request.get(field)
        if value is not None and not isinstance(value, dict):
            raise BadRequest(f"request.{field}: must be an object")
    if operation in ("CREATE", "UPDATE") and request.get("object") is None:
        raise BadRequest(f"request.object: Required value for {operation}")
    return request


def review(uid: str, *, allowed: bool, code: int = 200, message: str = "",
           warnings: Sequence[str] = (), patch: Sequence[Mapping[str, Any]] | None = None,
           ) -> dict[str, Any]:
    """An AdmissionReview v1 response body (controller-runtime's Allowed/Denied shapes)."""
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed or message:
        reason = "Forbidden" if code == 403 else "BadRequest" if code == 400 else ""
        status: dict[str, Any] = {"code": code, "message": message}
        if reason:
            status["reason"] = reason
        if not allowed:
            status["status"] = "Failure"
        response["status"] = status
    if warnings:
        response["warnings"] = list(warnings)
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(patch)).encode()).decode()
    return {"apiVersion": ADMISSION_VERSION, "kind": "AdmissionReview", "response": response}


def _kind_matches(request: Mapping[str, Any], entry: validation.KindEntry) -> str:
    kind = request.get("kind")
    if not isinstance(kind, dict):
        return ""  # optional for us: the object's own apiVersion/kind are checked below
    group, version = _group_version(entry.api_version)
    got = (kind.get("group", ""), kind.get("version", ""), kind.get("kind", ""))
    if got != (group, version, entry.kind):
        return (f"this webhook serves {entry.kind} ({entry.api_version}), not "
                f"{got[2]} ({'/'.join(p for p in got[:2] if p)})")
    return ""


Lister = Callable[[validation.KindEntry, str], list[dict[str, Any]]]
"""(kind, namespace) -> the stored objects of that kind in that namespace (wire dicts)."""

PeerRule = Callable[[Mapping[str, Any], list[dict[str, Any]]], list[outcome.SpecError]]
"""(the object being admitted, the stored objects of its kind in its namespace) -> errors."""

PEER_RULES: Mapping[tuple[str, str], PeerRule] = {
    (ipam.API_VERSION, ipam.IPPool.KIND): ipam.name_prefix_taken,
}
"""Admission rules that need the other stored objects of the kind, checked on CREATE and
UPDATE when the handler has a lister: two IPPools of a namespace may not share a namePrefix
(their IPAddress names would collide; upstream IPAM #1437)."""


def api_lister(api: Any) -> Lister:
    """A Lister reading through the API server (the manager's client)."""
    def list_kind(entry: validation.KindEntry, namespace: str) -> list[dict[str, Any]]:
        found = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
            entry.group, entry.version, namespace, entry.plural)
        return list(found.get("items") or [])

    return list_kind


def _peer_check(entry: validation.KindEntry, request: Mapping[str, Any],
                peers: Lister | None) -> validation.Admission:
    """The kind's PEER_RULES against the stored objects. When they cannot be listed (no RBAC,
    the API server busy) the object is admitted with a warning saying what was not checked:
    the controllers cope with what these rules refuse (a pool skips the addresses whose names
    another pool holds), so refusing every write would only block users."""
    rule = PEER_RULES.get((entry.api_version, entry.kind))
    obj = request.get("object")
    if rule is None or peers is None or request["operation"] not in ("CREATE", "UPDATE") or (
            not isinstance(obj, dict)):
        return validation.Admission()
    namespace = request.get("namespace") or (obj.get("metadata") or {}).get("namespace") or ""
    try:
        stored = peers(entry, namespace)
    except Exception as err:  # a library or API error: reported, not raised
        log.warning("admission of %s %s/%s: cannot list its peers: %s", entry.kind, namespace,
                    (obj.get("metadata") or {}).get("name"), err)
        return validation.Admission(warnings=(
            f"not checked against the other {entry.kind}s of namespace {namespace!r} (they "
            f"could not be listed: {err})",))
    return validation.Admission(tuple(rule(obj, stored)))


def validating_handler(entry: validation.KindEntry, peers: Lister | None = None) -> Handler:
    """Upstream's validating webhook for one kind: `validation.admit` (schema, the kind's rules,
    update rules against the old object; an old object our model cannot read gets the create
    rules only; DELETE runs the kind's delete rules, none for BareMetalHost), then the kind's
    `PEER_RULES` against the stored objects `peers` lists."""

    def handle(body: dict[str, Any]) -> dict[str, Any]:
        request = _admission_request(body)
        uid = request["uid"]
        mismatch = _kind_matches(request, entry)
        if mismatch:
            return review(uid, allowed=False, code=400, message=mismatch)
        operation = request["operation"]
        obj, old = request.get("object"), request.get("oldObject")
        subject = old if operation == "DELETE" else obj
        if subject is not None and (subject.get("apiVersion"), subject.get("kind")) != (
                entry.api_version, entry.kind):
            return review(uid, allowed=False, code=400,
                          message=f"object: expected {entry.kind} ({entry.api_version}), got "
                                  f"{subject.get('kind')!r} ({subject.get('apiVersion')!r})")
        if operation == "CONNECT" or (operation == "DELETE" and old is None):
            return review(uid, allowed=True)
        result = validation.admit(operation, obj, old)
        if result.allowed:
            peer = _peer_check(entry, request, peers)
            result = validation.Admission(peer.errors, result.warnings + peer.warnings)
        if not result.allowed:
            return review(uid, allowed=False, code=403, message=result.message(),
                          warnings=result.warnings)
        return review(uid, allowed=True, warnings=result.warnings)

    return handle


Defaulter = Callable[[dict[str, Any]], dict[str, Any]]
"""A wire object in, the defaulted wire object out (a copy)."""


def json_patch(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """RFC 6902 operations turning `before` into `after` (objects recursed into, other values
    replaced whole), as controller-runtime's defaulting response carries."""
    if isinstance(before, dict) and isinstance(after, dict):
        ops: list[dict[str, Any]] = []
        for key in before.keys() - after.keys():
            ops.append({"op": "remove", "path": f"{path}/{_pointer(key)}"})
        for key, value in after.items():
            here = f"{path}/{_pointer(key)}"
            if key not in before:
                ops.append({"op": "add", "path": here, "value": value})
            else:
                ops += json_patch(before[key], value, here)
        return ops
    if before == after and type(before) is type(after):
        return []
    return [{"op": "replace", "path": path, "value": after}]


def _pointer(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def mutating_handler(entry: validation.KindEntry, default: Defaulter | None = None) -> Handler:
    """Upstream's defaulting webhook for one kind: the patch from `default` (none: upstream's
    BareMetalHost defaulter changes nothing, so the answer is "allowed, no patch")."""

    def handle(body: dict[str, Any]) -> dict[str, Any]:
        request = _admission_request(body)
        uid = request["uid"]
        mismatch = _kind_matches(request, entry)
        if mismatch:
            return review(uid, allowed=False, code=400, message=mismatch)
        if request["operation"] not in ("CREATE", "UPDATE") or default is None:
            return review(uid, allowed=True)
        obj = request["object"]
        return review(uid, allowed=True, patch=json_patch(obj, default(json.loads(
            json.dumps(obj)))))

    return handle


def admission_handlers(
    entries: Iterable[validation.KindEntry] | None = None, *, peers: Lister | None = None,
) -> dict[str, Handler]:
    """Path -> handler for every kind with admission rules in `validation.KINDS` (or
    `entries`): its validating path, and its mutating path where upstream has a defaulter.
    `peers` (the manager passes `api_lister`) enables the `PEER_RULES`."""
    routes: dict[str, Handler] = {}
    for entry in entries if entries is not None else validation.webhooks():
        if entry.webhook is None or entry.model is None:
            continue
        routes[entry.webhook_path] = validating_handler(entry, peers)
        if entry.kind in UPSTREAM_DEFAULTERS:
            routes[path_for(entry.api_version, entry.kind, mutating=True)] = (
                mutating_handler(entry))
    return routes


# --- ConversionReview --------------------------------------------------------------------------

Converter = Callable[[dict[str, Any], str], dict[str, Any]]
"""(object, desired apiVersion) -> the converted object; ValueError when it cannot be."""


def conversion_handler(convert: Converter) -> Handler:
    """A CRD conversion webhook (ConversionReview apiextensions.k8s.io/v1): each object of the
    request converted by `convert`; any failure fails the whole review with its message."""

    def handle(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("apiVersion") != CONVERSION_VERSION or body.get("kind") != (
                "ConversionReview"):
            raise BadRequest(f"expected a ConversionReview of apiVersion {CONVERSION_VERSION}")
        request = body.get("request")
        if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
            raise BadRequest("request.uid: Required value (a string)")
        desired = request.get("desiredAPIVersion")
        objects = request.get("objects")
        if not isinstance(desired, str) or not desired:
            raise BadRequest("request.desiredAPIVersion: Required value (a string)")
        if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
            raise BadRequest("request.objects: must be a list of objects")
        response: dict[str, Any] = {"uid": request["uid"]}
        try:
            response["convertedObjects"] = [convert(obj, desired) for obj in objects]
            response["result"] = {"status": "Success"}
        except ValueError as err:
            response["convertedObjects"] = []
            response["result"] = {"status": "Failure", "message": str(err)}
        return {"apiVersion": CONVERSION_VERSION, "kind": "ConversionReview",
                "response": response}

    return handle


# --- the HTTPS server --------------------------------------------------------------------------


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context for a certificate chain and key (PEM files)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class _TlsServer(ThreadingHTTPServer):
    """Wraps each accepted connection with the TLS context current at accept time (so rotated
    certificates apply to new connections); the handshake runs in the request's thread."""

    daemon_threads = True
    context: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, Any]:
        raw, address = self.socket.accept()
        raw.settimeout(30)
        # Headers and body are separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every review.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.context.wrap_socket(raw, server_side=True,
                                        do_handshake_on_connect=False), address

    def handle_error(self, request: object, client_address: object) -> None:
        # A plain-HTTP client, a failed handshake, a client that hangs up: its problem only.
        log.debug("webhook: connection from %s failed", client_address, exc_info=True)


class WebhookServer:
    """HTTPS on `address` (host, port; port 0 picks one), exact paths to handlers.

    `tls` is required: the server has no plain-HTTP mode. `register` may be called before or
    after `start`. `started()` is the readiness check (upstream's StartedChecker).
    """

    name = "webhook-server"
    need_leader_election = False

    def __init__(self, address: tuple[str, int], *, tls: ssl.SSLContext,
                 handlers: Mapping[str, Handler] | None = None,
                 max_body: int = MAX_BODY_BYTES) -> None:
        if not isinstance(tls, ssl.SSLContext):
            raise TypeError("the webhook server serves HTTPS only: give it an ssl.SSLContext")
        self._handlers: dict[str, Handler] = dict(handlers or {})
        self._lock = threading.Lock()
        self._max_body = max_body
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        server_class = type("_Server", (_TlsServer,), {"address_family": family})
        self._server: _TlsServer = server_class(address, self._handler_class())
        self._server.context = tls
        self._thread: threading.Thread | None = None
        self._running = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def paths(self) -> list[str]:
        with self._lock:
            return sorted(self._handlers)

    def register(self, path: str, handler: Handler) -> None:
        if not path.startswith("/"):
            raise ValueError(f"webhook path {path!r} must start with /")
        with self._lock:
            self._handlers[path] = handler

    def set_tls(self, tls: ssl.SSLContext) -> None:
        """Serve new connections with `tls` (rotated certificates)."""
        self._server.context = tls

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, name="webhook-server",
                                        daemon=True)
        self._thread.start()
        self._running.set()
        log.info("webhook server serving HTTPS on %s:%d: %s", *self.address,
                 ", ".join(self.paths))

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def run(self, stop: threading.Event) -> None:
        """As a manager runnable: serve until `stop`."""
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def started(self) -> str | None:
        """Readiness: None once serving (the API server must not be sent here before)."""
        return None if self._running.is_set() else "webhook server not started"

    def _lookup(self, path: str) -> Handler | None:
        with self._lock:
            return self._handlers.get(path)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                self._reply(405, {"message": "webhooks take POST"}, allow="POST")

            def do_POST(self) -> None:
                path = self.path.partition("?")[0]
                handler = server._lookup(path)
                if handler is None:
                    self._drain()
                    self._reply(404, {"message": f"no webhook at {path}"})
                    return
                try:
                    body = self._read_json()
                except BadRequest as err:
                    self._reply(400, {"message": str(err)})
                    return
                except _TooLarge as err:
                    self.close_connection = True
                    self._reply(413, {"message": str(err)})
                    return
                try:
                    answer = handler(body)
                except BadRequest as err:
                    self._reply(400, {"message": str(err)})
                    return
                except Exception:  # a handler bug: deny (fail closed), keep serving
                    log.exception("webhook: handler for %s failed", path)
                    uid = ((body.get("request") or {}) if isinstance(body, dict) else {}).get(
                        "uid", "")
                    answer = review(str(uid), allowed=False, code=500,
                                    message="internal error in the webhook")
                self._reply(200, answer)

            def _drain(self) -> None:
                length = self._length()
                if 0 < length <= server._max_body:
                    self.rfile.read(length)
                else:
                    self.close_connection = True

            def _length(self) -> int:
                raw = self.headers.get("Content-Length", "")
                return int(raw) if raw.isdecimal() else -1

            def _read_json(self) -> dict[str, Any]:
                length = self._length()
                if length < 0:
                    self.close_connection = True
                    raise BadRequest("Content-Length: Required value (a request body)")
                if length > server._max_body:
                    raise _TooLarge(f"request body of {length} bytes is larger than "
                                    f"{server._max_body}")
                data = self.rfile.read(length)
                content_type = (self.headers.get("Content-Type") or "").partition(";")[0]
                if content_type.strip().lower() != "application/json":
                    raise BadRequest(f"Content-Type: {content_type or 'none'!s}, expected "
                                     "application/json")
                if not data:
                    raise BadRequest("request body is empty")
                try:
                    body = json.loads(data)
                except (UnicodeDecodeError, json.JSONDecodeError) as err:
                    raise BadRequest(f"request body is not JSON: {err}") from None
                except RecursionError:
                    raise BadRequest("request body is nested too deeply") from None
                if not isinstance(body, dict):
                    raise BadRequest("request body is not a JSON object")
                return body

            def _reply(self, status: int, doc: Mapping[str, Any], **headers: str) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key.title(), value)
                self.end_headers()
                self.wfile.write(data)

        return RequestHandler


class _TooLarge(Exception):
    pass


# --- the manager's runnable --------------------------------------------------------------------


class WebhookRunnable:
    """The webhook server as a manager runnable (every replica, no Lease): gets its
    certificates from `source` (retrying until it can), serves `handlers` on `address`, writes
    the CA into the ValidatingWebhookConfigurations named in `configurations` when the source
    manages it (and into the conversion webhooks of the CRDs named in `crds`), and every
    `check_interval_s` renews or re-reads the certificates, serving new connections with the
    new ones."""

    name = "webhook"
    need_leader_election = False

    def __init__(self, address: tuple[str, int], *, source: certs.Source,
                 handlers: Mapping[str, Handler], api: Any = None,
                 configurations: Sequence[str] = (), crds: Sequence[str] = (),
                 check_interval_s: float = 60.0, retry_s: float = 5.0) -> None:
        self.address = address
        self.source = source
        self.handlers = dict(handlers)
        self.api = api
        self.configurations = tuple(configurations)
        self.crds = tuple(crds)
        self.check_interval_s = check_interval_s
        self.retry_s = retry_s
        self.server: WebhookServer | None = None
        self._served: certs.Fingerprint | None = None
        self._lock = threading.Lock()

    def ready(self) -> str | None:
        server = self.server
        return "webhook server not started" if server is None else server.started()

    def check(self) -> bool:
        """One pass: renew or re-read the certificates, reload them if they changed, keep the
        CA bundle in the configurations. True when new certificates are now served."""
        bundle = self.source.ensure()
        changed = False
        with self._lock:
            fingerprint = certs.Fingerprint.of(bundle)
            if self.server is not None and fingerprint != self._served:
                self.server.set_tls(bundle.tls_context())
                self._served = fingerprint
                changed = True
                log.info("webhook server: serving a renewed certificate (expires %s)",
                         bundle.serving().not_valid_after_utc.isoformat())
        if self.source.manages_ca_bundle and self.api is not None:
            for name in self.configurations:
                certs.patch_ca_bundle(self.api, name, bundle.ca)
            for crd in self.crds:
                certs.patch_crd_ca_bundle(self.api, crd, bundle.ca)
        return changed

    def run(self, stop: threading.Event) -> None:
        bundle = None
        while bundle is None:
            try:
                bundle = self.source.ensure()
            except certs.CertificateError:
                raise  # a bad mounted file or setting: the operator must fix it
            except Exception as err:  # the API server not reachable yet: retry
                log.warning("webhook certificates not available yet: %s", err)
                if stop.wait(self.retry_s):
                    return
        try:
            server = WebhookServer(self.address, tls=bundle.tls_context(),
                                   handlers=self.handlers)
        except OSError as err:
            raise OSError(f"webhook server cannot listen on {self.address[0]}:"
                          f"{self.address[1]} (--webhook-host, --webhook-port): {err}") from err
        with self._lock:
            self._served = certs.Fingerprint.of(bundle)
            self.server = server
        server.start()
        try:
            while True:
                try:
                    self.check()
                except certs.CertificateError as err:
                    log.error("webhook certificates: %s (still serving the previous ones)", err)
                except Exception as err:
                    log.warning("webhook certificate check failed, retrying: %s", err)
                if stop.wait(self.check_interval_s):
                    break
        finally:
            server.stop()


# --- the ValidatingWebhookConfiguration --------------------------------------------------------

CONFIGURATION_NAME = "metalcubed-validating-webhook-configuration"
"""Upstream's `validating-webhook-configuration` with the project's name prefix (BMO's
kustomization makes it baremetal-operator-validating-webhook-configuration)."""
SERVICE_NAME = "metalcubed-webhook-service"
SERVICE_NAMESPACE = "metalcubed-system"


def configuration(
    regs: Sequence[Registration] | None = None, *, name: str = CONFIGURATION_NAME,
    service: str = SERVICE_NAME, namespace: str = SERVICE_NAMESPACE, url: str = "",
    ca_bundle: bytes = b"",
) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration registering `regs` (default: every served kind), as
    upstream's config/base/webhook/manifests.yaml: its names, paths, rules, failurePolicy Fail
    and sideEffects None. The API server reaches the Service `namespace/service` on 443, or
    `url` + path when given (a manager outside the cluster, as envtest does)."""
    hooks = []
    for reg in regs if regs is not None else registrations():
        client_config: dict[str, Any]
        if url:
            client_config = {"url": url.rstrip("/") + reg.path}
        else:
            client_config = {"service": {"name": service, "namespace": namespace,
                                         "path": reg.path}}
        if ca_bundle:
            client_config["caBundle"] = base64.b64encode(ca_bundle).decode()
        hooks.append({
            "admissionReviewVersions": ["v1"],
            "clientConfig": client_config,
            "failurePolicy": reg.failure_policy,
            "name": reg.name,
            "rules": [{"apiGroups": [reg.group], "apiVersions": [reg.version],
                       "operations": list(reg.operations), "resources": [reg.plural]}],
            "sideEffects": reg.side_effects,
        })
    return {"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "metalcubed",
                                                  "app.kubernetes.io/part-of": "metalcubed"}},
            "webhooks": hooks}


MANIFEST_HEADER = """\
# Generated by `python3 -m metalcubed.controllers.kube.webhook > manifests.yaml` from the kinds
# with admission rules (core/api/validation.KINDS); a test fails when it is stale.
# Names, paths, rules, failurePolicy and sideEffects are upstream baremetal-operator's
# (commit 02aa5059e, config/base/webhook/manifests.yaml). The manager writes the caBundle
# (its self-managed CA, Secret metalcubed-webhook-server-cert); with cert-manager, the
# cainjector does (controllers/manifests/certmanager, docs/webhooks.md).
"""


def manifest(url: str = "") -> str:
    """The configuration as YAML: the shipped file, or (with `url`) one that sends the API
    server to a manager running outside the cluster."""
    import yaml

    header = MANIFEST_HEADER if not url else (
        f"# The webhooks of a manager outside the cluster, at {url} (docs/webhooks.md).\n")
    return header + yaml.safe_dump(configuration(url=url), sort_keys=False)


def main(argv: Sequence[str] | None = None) -> int:
    """`python3 -m metalcubed.controllers.kube.webhook [--url https://HOST:PORT]`."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python3 -m metalcubed.controllers.kube.webhook",
        description="Print the ValidatingWebhookConfiguration of the manager's webhooks.")
    parser.add_argument("--url", default="", metavar="https://HOST:PORT",
                        help="a manager outside the cluster: the API server calls this URL "
                             "instead of the in-cluster Service")
    args = parser.parse_args(argv)
    if args.url and not args.url.startswith("https://"):
        parser.error(f"--url: {args.url!r} must be an https:// URL (webhooks are TLS only)")
    sys.stdout.write(manifest(args.url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
