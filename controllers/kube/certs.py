"""The webhook server's certificates: made, kept and rotated by the manager, or mounted.

Why: the API server calls admission webhooks over HTTPS only, verifying the serving
certificate against the `caBundle` of the webhook configuration. Two ways to get one:

- Self-managed (the default, like the cert-controller BMO-era operators embed): the manager
  keeps a CA and a serving certificate in one Secret (`ca.crt`, `ca.key`, `tls.crt`,
  `tls.key`; type kubernetes.io/tls), creates it on first start, renews the serving
  certificate when a third of its life remains (or when the names it must carry changed) and
  the CA likewise, and writes the CA into the `caBundle` of the ValidatingWebhookConfiguration.
  While a rotated CA is new, `ca.crt` carries the previous CA too, so replicas that still
  serve the old certificate stay trusted until they reload. Replicas share the Secret: whoever
  sees a rotation due first writes it (a write conflict means another replica won: re-read).
- Mounted (`--webhook-cert-dir`, the cert-manager convention controller-runtime follows):
  `tls.crt` and `tls.key` (and `ca.crt`, optional) in a folder, typically a mounted Secret
  that cert-manager writes and whose CA its cainjector puts into the configuration; re-read
  on every check, so a renewed certificate is served without a restart.

ECDSA P-256 keys, SHA-256 signatures, built with `cryptography`. Time comes from a
`ports.Clock`, so tests drive rotation with a manual clock.
"""

import base64
import dataclasses
import datetime
import ipaddress
import json
import logging
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client as k8s

from metalcubed.core import ports

log = logging.getLogger(__name__)

CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"
DEFAULT_SECRET = "metalcubed-webhook-server-cert"
DEFAULT_CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"
"""controller-runtime's default webhook certificate folder (where upstream mounts its Secret)."""
DAY_S = 86400.0


class CertificateError(ValueError):
    """Certificates that cannot be read, made or stored; the message names the file, Secret
    or object."""


# --- making certificates -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Lifetimes:
    """How long what is made lasts, and when it is renewed."""

    ca_s: float = 3650 * DAY_S
    serving_s: float = 365 * DAY_S
    renew_fraction: float = 1 / 3
    """Renew when less than this fraction of the lifetime remains."""
    backdate_s: float = 3600.0
    """notBefore lies this far in the past: clocks of the API server and the manager differ."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """PEM bytes: the CA certificate(s) clients trust, the CA key (self-managed only), the
    serving certificate and its key."""

    ca: bytes
    cert: bytes
    key: bytes
    ca_key: bytes = b""

    def serving(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert)

    def cas(self) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(self.ca) if self.ca.strip() else []

    def tls_context(self) -> ssl.SSLContext:
        """A TLS 1.2+ server context; the key touches disk only in a private temporary folder
        for as long as `ssl` needs to load it."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory(prefix="metalcubed-webhook-") as folder:
            cert_path, key_path = Path(folder, TLS_CERT), Path(folder, TLS_KEY)
            cert_path.write_bytes(self.cert)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(self.key)
            try:
                context.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as err:
                raise CertificateError(f"the serving certificate and key do not load: "
                                       f"{err}") from None
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=not ca,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False)


def new_ca(now: datetime.datetime, lifetimes: Lifetimes) -> tuple[bytes, bytes]:
    """(CA certificate PEM, CA key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = now - datetime.timedelta(seconds=lifetimes.backdate_s)
    name = _name(f"metalcubed-webhook-ca@{int(now.timestamp())}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(seconds=lifetimes.ca_s))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue(ca_cert: bytes, ca_key: bytes, names: Sequence[str], now: datetime.datetime,
          lifetimes: Lifetimes) -> tuple[bytes, bytes]:
    """(serving certificate PEM, key PEM) for `names` (DNS names or IP addresses), signed by
    the CA; never valid past the CA."""
    if not names:
        raise CertificateError("a serving certificate needs at least one name")
    issuer = x509.load_pem_x509_certificate(ca_cert)
    signer = serialization.load_pem_private_key(ca_key, password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise CertificateError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    until = min(now + datetime.timedelta(seconds=lifetimes.serving_s),
                issuer.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0])).issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=lifetimes.backdate_s))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False)
        .sign(signer, hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)


def _due(cert: x509.Certificate, now: datetime.datetime, fraction: float) -> bool:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= end - (end - start) * fraction


def _names_of(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | {
        str(n) for n in san.get_values_for_type(x509.IPAddress)}


def rotation_due(bundle: Bundle, names: Sequence[str], now: datetime.datetime,
                 lifetimes: Lifetimes) -> str:
    """Why `bundle` must be renewed now ("" when it is good): a CA or serving certificate
    near its end, a serving certificate missing a name or not signed by the CA."""
    try:
        cas = bundle.cas()
        cert = bundle.serving()
        serialization.load_pem_private_key(bundle.ca_key, password=None)
        serialization.load_pem_private_key(bundle.key, password=None)
    except (ValueError, TypeError) as err:
        return f"unreadable: {err}"
    if not cas:
        return "no CA certificate"
    if _due(cas[0], now, lifetimes.renew_fraction):
        return f"the CA expires at {cas[0].not_valid_after_utc.isoformat()}"
    if _due(cert, now, lifetimes.renew_fraction):
        return f"the serving certificate expires at {cert.not_valid_after_utc.isoformat()}"
    missing = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names} - _names_of(
        cert)
    if missing:
        return f"the serving certificate lacks {', '.join(sorted(missing))}"
    if cert.issuer != cas[0].subject:
        return "the serving certificate was not issued by the current CA"
    try:
        cert.verify_directly_issued_by(cas[0])
    except (ValueError, TypeError, Exception) as err:  # InvalidSignature is not a ValueError
        return f"the serving certificate does not verify against the CA: {type(err).__name__}"
    return ""


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def renew(old: Bundle | None, names: Sequence[str], now: datetime.datetime,
          lifetimes: Lifetimes) -> Bundle:
    """A bundle good for `names` at `now`: a new serving certificate, and a new CA when the
    old one is due or unusable (then the still-valid old CA stays in `ca` for the handover)."""
    keep_ca = False
    if old is not None and old.ca_key:
        try:
            cas = old.cas()
            serialization.load_pem_private_key(old.ca_key, password=None)
            keep_ca = bool(cas) and not _due(cas[0], now, lifetimes.renew_fraction)
        except (ValueError, TypeError):
            keep_ca = False
    if keep_ca and old is not None:
        ca_pem, ca_key = _pem(old.cas()[0]), old.ca_key
        bundle_ca = old.ca
    else:
        ca_pem, ca_key = new_ca(now, lifetimes)
        bundle_ca = ca_pem
        if old is not None:
            try:
                previous = [c for c in old.cas()[:1] if c.not_valid_after_utc > now]
            except ValueError:
                previous = []
            bundle_ca += b"".join(_pem(c) for c in previous)
    cert, key = issue(ca_pem, ca_key, names, now, lifetimes)
    return Bundle(ca=bundle_ca, cert=cert, key=key, ca_key=ca_key)


# --- where certificates come from ----------------------------------------------------------------


class Source(Protocol):
    """Gives the bundle to serve now; renews or re-reads as its kind requires."""

    def ensure(self) -> Bundle: ...

    @property
    def manages_ca_bundle(self) -> bool:
        """True when the manager must write the CA into the webhook configuration."""
        ...


class DirectorySource:
    """`--webhook-cert-dir`: tls.crt and tls.key (ca.crt optional) as cert-manager writes
    them; read again on every `ensure`. CertificateError names a missing or bad file."""

    manages_ca_bundle = False

    def __init__(self, directory: Path, *, cert_name: str = TLS_CERT,
                 key_name: str = TLS_KEY) -> None:
        self.directory = directory
        self.cert_name = cert_name
        self.key_name = key_name

    def ensure(self) -> Bundle:
        files = {}
        for name in (self.cert_name, self.key_name):
            path = self.directory / name
            try:
                files[name] = path.read_bytes()
            except OSError as err:
                raise CertificateError(f"--webhook-cert-dir: cannot read {path}: "
                                       f"{err.strerror or err}") from None
        ca_path = self.directory / CA_CERT
        ca = ca_path.read_bytes() if ca_path.is_file() else b""
        bundle = Bundle(ca=ca, cert=files[self.cert_name], key=files[self.key_name])
        try:
            bundle.serving()
        except ValueError as err:
            raise CertificateError(f"--webhook-cert-dir: {self.directory / self.cert_name} is "
                                   f"not a PEM certificate: {err}") from None
        return bundle


class SecretSource:
    """The self-managed bundle in the Secret `namespace/name`, renewed when due (module
    docstring). Talks to the API server through `api` (the manager's client)."""

    manages_ca_bundle = True

    def __init__(self, api: k8s.ApiClient, *, namespace: str, name: str = DEFAULT_SECRET,
                 names: Sequence[str], clock: ports.Clock,
                 lifetimes: Lifetimes | None = None) -> None:
        if not names:
            raise CertificateError("the webhook certificate needs at least one name")
        self._core = k8s.CoreV1Api(api)
        self.namespace = namespace
        self.name = name
        self.names = tuple(names)
        self.clock = clock
        self.lifetimes = lifetimes or Lifetimes()
        self._type = "kubernetes.io/tls"

    def _read(self) -> tuple[Bundle | None, str | None]:
        """(bundle or None when absent/unreadable, resourceVersion or None when absent)."""
        try:
            response = self._core.read_namespaced_secret(
                self.name, self.namespace, _preload_content=False)
        except k8s.ApiException as err:
            if err.status == 404:
                return None, None
            raise
        secret = json.loads(response.data)
        version = secret["metadata"]["resourceVersion"]
        self._type = secret.get("type") or "Opaque"  # immutable: a replacement keeps it
        data = secret.get("data") or {}
        try:
            bundle = Bundle(**{
                field: base64.b64decode(data.get(key, ""))
                for field, key in (("ca", CA_CERT), ("cert", TLS_CERT), ("key", TLS_KEY),
                                   ("ca_key", CA_KEY))
            })
        except (ValueError, TypeError):
            return None, version
        return bundle, version

    def _body(self, bundle: Bundle, version: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name, "namespace": self.namespace,
            "labels": {"app.kubernetes.io/name": "metalcubed",
                       "app.kubernetes.io/component": "webhook"},
        }
        if version is not None:
            metadata["resourceVersion"] = version
        data = {CA_CERT: bundle.ca, CA_KEY: bundle.ca_key, TLS_CERT: bundle.cert,
                TLS_KEY: bundle.key}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
                "type": self._type if version is not None else "kubernetes.io/tls",
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}

    def ensure(self) -> Bundle:
        for _ in range(5):
            current, version = self._read()
            now = self.clock.now()
            why = ("no Secret" if version is None else "unreadable Secret" if current is None
                   else rotation_due(current, self.names, now, self.lifetimes))
            if current is not None and not why:
                return current
            fresh = renew(current, self.names, now, self.lifetimes)
            body = self._body(fresh, version)
            try:
                if version is None:
                    self._core.create_namespaced_secret(self.namespace, body,
                                                        _preload_content=False)
                else:
                    self._core.replace_namespaced_secret(self.name, self.namespace, body,
                                                         _preload_content=False)
            except k8s.ApiException as err:
                if err.status == 409:
                    continue  # another replica wrote it first: use theirs
                if err.status == 422:
                    raise CertificateError(
                        f"Secret {self.namespace}/{self.name} (type {self._type}) cannot hold "
                        "the webhook certificate: delete it, or name another with "
                        "--webhook-cert-secret") from None
                raise
            log.info("webhook certificate %s in Secret %s/%s (%s)",
                     "created" if version is None else "renewed", self.namespace, self.name,
                     why)
            return fresh
        raise CertificateError(f"Secret {self.namespace}/{self.name}: kept conflicting with "
                               "other writers")


# --- the CA bundle in the webhook configuration --------------------------------------------------


def patch_ca_bundle(api: k8s.ApiClient, configuration: str, ca: bytes) -> bool:
    """Put `ca` into every webhook's `clientConfig.caBundle` of the ValidatingWebhookConfiguration
    `configuration` (get, then update with its resourceVersion; retried on conflict). True when
    it changed something. A missing configuration is logged and skipped (not registered yet)."""
    admission = k8s.AdmissionregistrationV1Api(api)
    encoded = base64.b64encode(ca).decode()
    for _ in range(5):
        try:
            current = json.loads(admission.read_validating_webhook_configuration(
                configuration, _preload_content=False).data)
        except k8s.ApiException as err:
            if err.status == 404:
                log.warning("ValidatingWebhookConfiguration %s not found: its caBundle is "
                            "not set", configuration)
                return False
            raise
        changed = False
        for hook in current.get("webhooks") or []:
            client_config = hook.setdefault("clientConfig", {})
            if client_config.get("caBundle") != encoded:
                client_config["caBundle"] = encoded
                changed = True
        if not changed:
            return False
        try:
            admission.replace_validating_webhook_configuration(
                configuration, current, _preload_content=False)
        except k8s.ApiException as err:
            if err.status == 409:
                continue
            raise
        log.info("caBundle of ValidatingWebhookConfiguration %s updated", configuration)
        return True
    raise CertificateError(f"ValidatingWebhookConfiguration {configuration}: kept conflicting "
                           "with other writers")


def patch_crd_ca_bundle(api: k8s.ApiClient, crd: str, ca: bytes) -> bool:
    """Put `ca` into the conversion webhook's `caBundle` of the CustomResourceDefinition `crd`
    (the CAPM3 kinds convert v1beta1 <-> v1beta2 at the manager's /convert). True when it
    changed something; a CRD that is not installed, or converts without a webhook, is skipped."""
    extensions = k8s.ApiextensionsV1Api(api)
    encoded = base64.b64encode(ca).decode()
    for _ in range(5):
        try:
            current = json.loads(extensions.read_custom_resource_definition(
                crd, _preload_content=False).data)
        except k8s.ApiException as err:
            if err.status == 404:
                log.debug("CRD %s not installed: no caBundle to write", crd)
                return False
            raise
        conversion = current.get("spec", {}).get("conversion") or {}
        client_config = (conversion.get("webhook") or {}).get("clientConfig")
        if conversion.get("strategy") != "Webhook" or not isinstance(client_config, dict):
            return False
        if client_config.get("caBundle") == encoded:
            return False
        client_config["caBundle"] = encoded
        try:
            extensions.replace_custom_resource_definition(crd, current, _preload_content=False)
        except k8s.ApiException as err:
            if err.status == 409:
                continue
            raise
        log.info("caBundle of the conversion webhook of CRD %s updated", crd)
        return True
    raise CertificateError(f"CustomResourceDefinition {crd}: kept conflicting with other "
                           "writers")


def service_names(service: str, namespace: str) -> list[str]:
    """The names the API server uses for a webhook Service (and its short forms)."""
    return [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local",
            f"{service}.{namespace}", service]


@dataclasses.dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies a served bundle: reload only when it changes."""

    cert: bytes
    key: bytes
    ca: bytes

    @classmethod
    def of(cls, bundle: Bundle) -> "Fingerprint":
        return cls(bundle.cert, bundle.key, bundle.ca)
