"""`--metrics-secure`: /metrics over TLS, for callers the API server authenticates and authorizes.

Why: the scrape shows every host's state and error counts and its address was reachable by
anything on the Pod network (issue 14). controller-runtime's secure metrics serve HTTPS with a
certificate from files (`--metrics-cert-path`, else a self-signed one made at start) and put
`filters.WithAuthenticationAndAuthorization` in front: the caller's bearer token goes to the
API server as a TokenReview (who is it?), then a SubjectAccessReview asks whether that user may
`get` the non-resource URL `/metrics` (RBAC: a ClusterRole with `nonResourceURLs: ["/metrics"]`,
shipped as metalcubed-metrics-reader). This module does the same:

- no or malformed `Authorization: Bearer` header, or a token the API server does not accept:
  401; a user without the right: 403; the API server unreachable: 503 (nothing is served);
- the answers are not cached (one TokenReview and one SubjectAccessReview per scrape: a
  Prometheus scraping every 30 s costs the API server 4 requests a minute);
- the manager's own identity needs `create` on tokenreviews and subjectaccessreviews
  (the shipped ClusterRole metalcubed-metrics-auth).

A self-signed certificate is made in memory and written only to a private temporary
directory long enough for `ssl` to load it.
"""

import datetime
import ipaddress
import json
import logging
import socket
import ssl
import tempfile
from email.message import Message
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s

log = logging.getLogger(__name__)

DEFAULT_CERT_NAME = "tls.crt"
DEFAULT_KEY_NAME = "tls.key"


def self_signed() -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for this host: ECDSA P-256, one year, names the hostname,
    localhost and 127.0.0.1 (controller-runtime's self-signed serving cert does likewise)."""
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"metalcubed-metrics@{host}")])
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(host), x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(cert_file: Path | None = None, key_file: Path | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context from the files, or from a fresh self-signed pair when None.
    ValueError names the file that cannot be loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is None or key_file is None:
        cert, key = self_signed()
        with tempfile.TemporaryDirectory(prefix="metalcubed-metrics-") as folder:
            cert_path, key_path = Path(folder, "tls.crt"), Path(folder, "tls.key")
            cert_path.write_bytes(cert)
            key_path.touch(mode=0o600)
            key_path.write_bytes(key)
            context.load_cert_chain(cert_path, key_path)
        return context
    for path in (cert_file, key_file):
        if not path.is_file():
            raise ValueError(f"--metrics-cert-path: {path} is not a file")
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as err:
        raise ValueError(f"--metrics-cert-path: cannot load {cert_file} and {key_file}: "
                         f"{err}") from None
    return context


class KubeAuthorizer:
    """The request guard (health.Guard) of secure metrics: TokenReview, then
    SubjectAccessReview for `get` on the request's path, through `api` (the manager's client)."""

    def __init__(self, api: k8s.ApiClient, *, timeout_s: float = 10.0) -> None:
        self._authn = k8s.AuthenticationV1Api(api)
        self._authz = k8s.AuthorizationV1Api(api)
        self._timeout_s = timeout_s

    def __call__(self, headers: Message, path: str) -> tuple[int, str] | None:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return 401, "Unauthorized: a bearer token is required"
        try:
            # Unparsed (_preload_content=False): the client logs parsed bodies at debug, and a
            # TokenReview's answer echoes the token.
            review = _json(self._authn.create_token_review(
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                 "spec": {"token": token}},
                _request_timeout=self._timeout_s, _preload_content=False,
            ))
            status = review.get("status") or {}
            user = status.get("user") or {}
            if not status.get("authenticated") or not user.get("username"):
                return 401, "Unauthorized"
            username = str(user["username"])
            spec: dict[str, Any] = {
                "user": username,
                "nonResourceAttributes": {"path": path, "verb": "get"},
            }
            for field in ("groups", "uid", "extra"):
                if user.get(field):
                    spec[field] = user[field]
            access = _json(self._authz.create_subject_access_review(
                {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                 "spec": spec},
                _request_timeout=self._timeout_s, _preload_content=False,
            ))
        except Exception as err:  # the API server down or refusing us: serve nothing
            log.warning("metrics: cannot authorize a scrape: %s", _short(err))
            return 503, "Service Unavailable: cannot reach the API server to authorize"
        if not (access.get("status") or {}).get("allowed"):
            log.info("metrics: %s may not get %s", username, path)
            return 403, f"Forbidden: user {username!r} may not get {path}"
        return None


def _json(response: object) -> dict[str, Any]:
    data = getattr(response, "data", b"")
    doc = json.loads(data) if data else {}
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def _short(err: Exception) -> str:
    if isinstance(err, k8s.ApiException):
        return f"HTTP {err.status} {err.reason}"
    return f"{type(err).__name__}: {err}"
