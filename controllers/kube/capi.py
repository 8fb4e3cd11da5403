"""Real Cluster API core beside the local control plane: the partner CAPM3 is written against.

Why: CAPM3 is a Cluster API infrastructure provider; its objects only mean something when Cluster
API core (the Cluster, Machine, MachineSet and MachineDeployment controllers) reads them through
the contract (CRD labels `cluster.x-k8s.io/<contract>: <versions>`, `status.initialization`,
`spec.providerID`). Rather than model CAPI core, metalcubed runs the real one, v1.13.6 (contract
v1beta2, the newest release the Go module proxy serves that builds), built by `build-capi.sh`
(shipped beside this module) and cached like kube-apiserver. Deletion needs the garbage
collector, which `localcluster` already runs (kube-controller-manager with only the
`garbagecollector` and `namespace` controllers: no node lifecycle controller, so the lab's fake
Nodes are never tainted or evicted).

What `start` does on a running local cluster:
- runs the CAPM3 conversion webhook (conversionserver.py, HTTPS on 127.0.0.1) and installs the
  CAPM3 and IPAM CRDs (capm3crds.py) with their conversion pointed at it, so v1beta1 manifests
  are stored as v1beta2 with nothing lost;
- installs CAPI core's own CRDs (from the module, copied next to the binary by the build);
- writes a throw-away self-signed serving pair (also the conversion webhook's): controller-
  runtime always starts CAPI's webhook server and exits without `tls.crt`/`tls.key`
  (`--webhook-port=0` means 9443, not "off"). No
  webhook configuration points at it: CAPI objects get no defaulting, validation or conversion,
  so callers create complete v1beta2 objects;
- runs `capi-manager` on loopback (health, webhook; diagnostics off; leader election off;
  MachinePool and MachineSet preflight checks off; no CRD storage migration) and waits for
  /readyz. The process is recorded in the cluster's state.json, so `localcluster.stop` and
  `metalcubed kube stop` stop it too;
- runs the lab kubelet (kubelet.py, process `lab-kubelet`): the Nodes of provisioned hosts, so
  Machines reach Running (`kubelet=False` leaves it out, for callers that embed their own).
"""

import datetime
import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from metalcubed.controllers.kube import capm3crds, localcluster

CAPI_VERSION = "v1.13.6"
"""Cluster API core built by build-capi.sh (keep in step with its CAPI_VERSION default)."""
CACHE_ENV = "METALCUBED_CAPI_CACHE"
PROCESS_NAME = "capi-manager"
KUBELET_PROCESS = "lab-kubelet"
CONVERSION_PROCESS = "capm3-conversion-webhook"
FEATURE_GATES = "MachinePool=false,MachineSetPreflightChecks=false"
"""MachinePools are out of scope; preflight checks need a control-plane provider (KCP)."""


def cache_root() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "metalcubed" / "capi"


def build_script() -> Path:
    return Path(__file__).with_name("build-capi.sh")


def build_command() -> str:
    return f"bash {build_script()}   # or: metalcubed kube build --capi"


@dataclass(frozen=True, slots=True, kw_only=True)
class CapiBinaries:
    """capi-manager and the CRDs of the same Cluster API release, in one directory."""

    directory: Path

    @property
    def manager(self) -> Path:
        return self.directory / "capi-manager"

    @property
    def crd_dir(self) -> Path:
        return self.directory / "crds"

    def crds(self) -> list[dict[str, Any]]:
        """Cluster API core's CustomResourceDefinitions, as wire dicts."""
        return [yaml.safe_load(p.read_text()) for p in sorted(self.crd_dir.glob("*.yaml"))]


def find() -> CapiBinaries | None:
    """The cached build of CAPI_VERSION, or None when it is not built (completely)."""
    found = CapiBinaries(directory=cache_root() / f"capi-{CAPI_VERSION}")
    complete = (found.crd_dir / ".complete").is_file()
    ok = found.manager.is_file() and os.access(found.manager, os.X_OK) and complete
    return found if ok else None


def build(*, progress: IO[str] | None) -> CapiBinaries:
    """Run build-capi.sh (it also builds kube-apiserver & co. if missing); minutes when cold."""
    env = dict(os.environ, CAPI_VERSION=CAPI_VERSION,
               KUBE_VERSION=localcluster.KUBE_VERSION, ETCD_VERSION=localcluster.ETCD_VERSION)
    env[CACHE_ENV] = str(cache_root())
    env[localcluster.CACHE_ENV] = str(localcluster.cache_root())
    proc = subprocess.Popen(
        ["bash", str(build_script())], env=env, stdout=subprocess.PIPE,
        stderr=progress if progress is not None else subprocess.DEVNULL, text=True,
    )
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise localcluster.LocalClusterError(
            f"building Cluster API {CAPI_VERSION} failed (exit {proc.returncode}); "
            f"rerun `{build_command()}` to see why"
        )
    lines = out.strip().splitlines()
    if not lines:
        raise localcluster.LocalClusterError("build-capi.sh printed no output directory")
    return CapiBinaries(directory=Path(lines[-1]))


def ensure(*, progress: IO[str] | None) -> CapiBinaries:
    return find() or build(progress=progress)


def self_signed_pair(directory: Path) -> Path:
    """tls.crt/tls.key (ECDSA, self-signed, SAN 127.0.0.1) in `directory`; returns tls.crt.

    The certificate is its own CA: it is the caBundle of the conversion webhook.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "capi-webhook-local")])
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(directory / "tls.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / "tls.crt"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def manager_argv(binaries: CapiBinaries, *, kubeconfig: Path, cert_dir: Path,
                 webhook_port: int, health_port: int) -> list[str]:
    return [
        str(binaries.manager),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        f"--webhook-port={webhook_port}",
        f"--webhook-cert-dir={cert_dir}",
        f"--health-addr=127.0.0.1:{health_port}",
        "--diagnostics-address=0",  # off: nothing but health is served
        f"--feature-gates={FEATURE_GATES}",
        "--skip-crd-migration-phases=StorageVersionMigration,CleanupManagedFields",
        "--v=0",
    ]


def start(
    cluster: localcluster.Cluster,
    *,
    binaries: CapiBinaries,
    lifetime: localcluster.Lifetime,
    timeout_s: float = 120.0,
    log: Callable[[str], None] | None = None,
    kubelet: bool = True,
) -> localcluster.Cluster:
    """Serve CAPM3 conversion, install the CAPM3/IPAM and CAPI core CRDs, start capi-manager
    against `cluster`; ready on return.

    Raises LocalClusterError (with the manager's log tail) if it exits or is not ready in
    `timeout_s`; the caller stops the cluster (the manager is recorded in its state).
    """
    say = log or (lambda _msg: None)
    began = time.monotonic()
    deadline = began + timeout_s
    cert_dir = cluster.directory / "capi-webhook-certs"
    cert = self_signed_pair(cert_dir)
    convert_port = _free_port()
    cluster, server = localcluster.launch_extra(
        cluster, CONVERSION_PROCESS,
        [sys.executable, "-m", "metalcubed.controllers.kube.conversionserver",
         f"--port={convert_port}", f"--cert-dir={cert_dir}"],
        port=convert_port, lifetime=lifetime)
    _wait_tcp(server, convert_port, deadline=deadline)
    target = capm3crds.ConversionTarget(url=f"https://127.0.0.1:{convert_port}/convert",
                                        ca_bundle_pem=cert.read_bytes())
    from kubernetes import config as kconfig

    api = kconfig.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        localcluster.install_crds(api, capm3crds.load(conversion=target), timeout_s=timeout_s)
        say(f"CAPM3 and IPAM CRDs Established, converted by {target.url} "
            f"({time.monotonic() - began:.1f} s)")
        localcluster.install_crds(api, binaries.crds(), timeout_s=timeout_s)
    finally:
        api.close()
    say(f"Cluster API {CAPI_VERSION} CRDs Established ({time.monotonic() - began:.1f} s)")
    health = _free_port()
    argv = manager_argv(binaries, kubeconfig=cluster.kubeconfig, cert_dir=cert_dir,
                        webhook_port=_free_port(), health_port=health)
    cluster, proc = localcluster.launch_extra(cluster, PROCESS_NAME, argv, port=health,
                                              lifetime=lifetime)
    localcluster.wait_http(proc, f"http://127.0.0.1:{health}/readyz", deadline=deadline)
    say(f"Cluster API {CAPI_VERSION} core ready, health on 127.0.0.1:{health} "
        f"({time.monotonic() - began:.1f} s)")
    if kubelet:
        cluster, _ = localcluster.launch_extra(
            cluster, KUBELET_PROCESS,
            [sys.executable, "-m", "metalcubed.controllers.kube.kubelet",
             f"--kubeconfig={cluster.kubeconfig}"], port=0, lifetime=lifetime)
        say("lab kubelet running: a Node for each host provisioned for a Metal3Machine")
    return cluster


def _wait_tcp(proc: localcluster.Process, port: int, *, deadline: float) -> None:
    while True:
        if not localcluster.is_alive(proc):
            raise localcluster.LocalClusterError(
                f"{proc.name} exited during start-up; see {proc.log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise localcluster.LocalClusterError(f"{proc.name} not listening on {port}; "
                                                 f"see {proc.log}")
        time.sleep(0.05)
