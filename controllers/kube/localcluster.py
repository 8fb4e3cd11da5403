"""A throw-away Kubernetes control plane on loopback: etcd + kube-apiserver (+ GC), envtest style.

Why: the Kubernetes store and runtime must be tested against the real API server (DESIGN.md,
"Real Kubernetes in tests"), and developers want `kubectl` against a local cluster without
Docker. The binaries are built once from the Go module proxy by `build-kube.sh` (shipped next
to this module) and cached outside the checkout; this module starts them with generated
certificates and free ports, waits until they serve, writes an admin kubeconfig and records
pids and ports in a state directory so that another process (`metalcubed kube stop`) can stop
them.

What runs (flags follow controller-runtime's envtest, see docs/local-apiserver.md):
- etcd on 127.0.0.1 with `--unsafe-no-fsync` (tests do not need durability);
- kube-apiserver on 127.0.0.1 with client-certificate authentication and RBAC;
- kube-controller-manager with only the `garbagecollector` and `namespace` controllers, when
  its binary is present, so owner references are collected and namespaces really go away as
  they would in a cluster. No scheduler, no kubelet: Pods never run.

Layout of a cluster directory:
    state.json          pids (with /proc start times, so a reused pid is never signalled), ports
    kubeconfig          admin credentials (O=system:masters), certificates embedded
    pki/                CA, serving cert, admin client cert, service-account key pair
    etcd-data/          wiped on every start: each start is a fresh cluster
    logs/<process>.log
"""

import base64
import contextlib
import ctypes
import dataclasses
import datetime
import enum
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from metalcubed.core import outcome

KUBE_VERSION = "1.36.3"
"""kube-apiserver version built by build-kube.sh: the minor of the pinned `kubernetes` client."""
ETCD_VERSION = "v3.6.16"
BIN_ENV = "METALCUBED_KUBE_BIN"
"""A directory holding prebuilt kube-apiserver and etcd (and optionally kube-controller-manager,
kubectl); overrides the build cache."""
CACHE_ENV = "METALCUBED_KUBE_CACHE"
CLUSTER_NAME = "metalcubed-local"
GC_CONTROLLERS = ("garbagecollector", "namespace")


class LocalClusterError(outcome.MetalcubedError):
    """The local control plane could not be built, started or reached."""


# --- binaries --------------------------------------------------------------------------------


def cache_root() -> Path:
    """Where binaries and the default cluster directory live: outside any checkout."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "metalcubed" / "kube"


def default_cluster_dir() -> Path:
    return cache_root() / "cluster"


def build_script() -> Path:
    """The build script shipped as package data beside this module."""
    return Path(__file__).with_name("build-kube.sh")


def build_command() -> str:
    """The shell command that builds the binaries (quoted in error messages)."""
    return f"bash {build_script()}   # or: metalcubed kube build"


@dataclass(frozen=True, slots=True, kw_only=True)
class Binaries:
    """The executables of one Kubernetes/etcd version pair, in one directory."""

    directory: Path

    @property
    def kube_apiserver(self) -> Path:
        return self.directory / "kube-apiserver"

    @property
    def etcd(self) -> Path:
        return self.directory / "etcd"

    @property
    def kube_controller_manager(self) -> Path | None:
        """None when absent: the cluster then runs without garbage collection."""
        return _executable(self.directory / "kube-controller-manager")

    @property
    def kubectl(self) -> Path | None:
        """The version-matched kubectl when built, else the one on PATH, else None."""
        own = _executable(self.directory / "kubectl")
        if own is not None:
            return own
        found = shutil.which("kubectl")
        return Path(found) if found else None


def _executable(path: Path) -> Path | None:
    return path if path.is_file() and os.access(path, os.X_OK) else None


def find_binaries() -> Binaries | None:
    """Prebuilt binaries from $METALCUBED_KUBE_BIN or the build cache, or None if not built.

    The cache counts as built only when all four binaries are there (the build script makes
    them together); $METALCUBED_KUBE_BIN needs only kube-apiserver and etcd.
    """
    explicit = os.environ.get(BIN_ENV)
    if explicit:
        found = Binaries(directory=Path(explicit))
        if _executable(found.kube_apiserver) and _executable(found.etcd):
            return found
        raise LocalClusterError(f"${BIN_ENV}={explicit} holds no kube-apiserver and etcd")
    cached = Binaries(directory=cache_root() / f"k8s-{KUBE_VERSION}-etcd-{ETCD_VERSION}")
    names = ("kube-apiserver", "etcd", "kube-controller-manager", "kubectl")
    if all(_executable(cached.directory / name) for name in names):
        return cached
    return None


def build_binaries(*, progress: IO[str] | None) -> Binaries:
    """Run build-kube.sh (minutes when cold, instant when cached), streaming its progress.

    Raises LocalClusterError when the build fails; the log lines were written to `progress`.
    """
    env = dict(os.environ, KUBE_VERSION=KUBE_VERSION, ETCD_VERSION=ETCD_VERSION)
    env[CACHE_ENV] = str(cache_root())
    proc = subprocess.Popen(
        ["bash", str(build_script())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=progress if progress is not None else subprocess.DEVNULL,
        text=True,
    )
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise LocalClusterError(
            f"building kube-apiserver/etcd failed (exit {proc.returncode}); "
            f"rerun `{build_command()}` to see why"
        )
    lines = out.strip().splitlines()
    if not lines:
        raise LocalClusterError("the build script printed no output directory")
    return Binaries(directory=Path(lines[-1]))


def ensure_binaries(*, progress: IO[str] | None) -> Binaries:
    """The binaries, building them first if needed."""
    return find_binaries() or build_binaries(progress=progress)


# --- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    """Paths of the generated key material (PEM files) in one directory."""

    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def ca_cert(self) -> Path:
        return self.path("ca.crt")

    @property
    def serving_cert(self) -> Path:
        return self.path("apiserver.crt")

    @property
    def serving_key(self) -> Path:
        return self.path("apiserver.key")

    @property
    def admin_cert(self) -> Path:
        return self.path("admin.crt")

    @property
    def admin_key(self) -> Path:
        return self.path("admin.key")

    @property
    def sa_key(self) -> Path:
        return self.path("sa.key")

    @property
    def sa_pub(self) -> Path:
        return self.path("sa.pub")


def ensure_pki(directory: Path) -> Pki:
    """Generate a CA, a serving cert, an admin client cert and an SA key pair, once per dir.

    ECDSA P-256 throughout (as envtest's TinyCA). The serving cert names 127.0.0.1, localhost
    and the in-cluster service names; the admin cert is CN=admin, O=system:masters.
    """
    pki = Pki(directory=directory)
    if pki.sa_pub.exists():
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    until = now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metalcubed-local-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, sans: Sequence[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    serving, serving_key = leaf(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
        ],
    )
    admin, admin_key = leaf(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
            ]
        ),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        [],
    )
    sa_key = ec.generate_private_key(ec.SECP256R1())
    _write(pki.ca_cert, _cert_pem(ca_cert))
    _write(pki.path("ca.key"), _key_pem(ca_key))
    _write(pki.serving_cert, _cert_pem(serving))
    _write(pki.serving_key, _key_pem(serving_key))
    _write(pki.admin_cert, _cert_pem(admin))
    _write(pki.admin_key, _key_pem(admin_key))
    _write(pki.sa_key, _key_pem(sa_key))
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write(pki.sa_pub, sa_pub)  # written last: its presence means "complete"
    return pki


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# --- processes -------------------------------------------------------------------------------


class Lifetime(enum.Enum):
    """How the started processes relate to the process that starts them."""

    DETACHED = "detached"
    """Own session; they outlive the starter (`metalcubed kube start`)."""
    TIED = "tied"
    """Own session, but killed (SIGTERM) if the starter dies without stopping them (tests)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Process:
    name: str
    pid: int
    start_ticks: int
    """/proc/<pid>/stat start time: tells our process from a later one that reused the pid."""
    port: int
    """The port it serves on (0 when it serves none)."""
    log: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """A running local control plane, as recorded in `<directory>/state.json`."""

    directory: Path
    server: str
    """https://127.0.0.1:<port>"""
    kubeconfig: Path
    processes: tuple[Process, ...]
    started_in_s: float
    """Wall time from launching etcd to ready (readyz, CRDs Established, GC collecting)."""

    @property
    def pki(self) -> Pki:
        return Pki(directory=self.directory / "pki")

    def process(self, name: str) -> Process | None:
        return next((p for p in self.processes if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "startedInSeconds": round(self.started_in_s, 3),
            "processes": [
                {"name": p.name, "pid": p.pid, "startTicks": p.start_ticks, "port": p.port,
                 "log": str(p.log)}
                for p in self.processes
            ],
        }

    @classmethod
    def from_json(cls, directory: Path, data: Mapping[str, Any]) -> "Cluster":
        return cls(
            directory=directory,
            server=str(data["server"]),
            kubeconfig=Path(data["kubeconfig"]),
            started_in_s=float(data.get("startedInSeconds", 0.0)),
            processes=tuple(
                Process(name=p["name"], pid=int(p["pid"]), start_ticks=int(p["startTicks"]),
                        port=int(p["port"]), log=Path(p["log"]))
                for p in data["processes"]
            ),
        )


def state_file(directory: Path) -> Path:
    return directory / "state.json"


def load(directory: Path) -> Cluster | None:
    """The cluster recorded in `directory`, or None when there is no state file."""
    try:
        data = json.loads(state_file(directory).read_text())
    except FileNotFoundError:
        return None
    return Cluster.from_json(directory, data)


def _save(cluster: Cluster) -> None:
    tmp = state_file(cluster.directory).with_suffix(".tmp")
    tmp.write_text(json.dumps(cluster.to_json(), indent=2) + "\n")
    tmp.replace(state_file(cluster.directory))


def is_running(cluster: Cluster) -> bool:
    """True when every recorded process is still alive (and is still the same process)."""
    return bool(cluster.processes) and all(is_alive(p) for p in cluster.processes)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start ticks) of a pid from /proc, None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(proc: Process) -> bool:
    _reap(proc.pid)
    st = _stat(proc.pid)
    return st is not None and st[0] != "Z" and st[1] == proc.start_ticks


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_PR_SET_PDEATHSIG = 1


def _child_setup(lifetime: Lifetime) -> Callable[[], None] | None:
    if lifetime is Lifetime.DETACHED:
        return None
    # Loaded before fork: the child must do as little as possible between fork and exec.
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def tie() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return tie


def _launch(
    name: str, argv: Sequence[str], *, port: int, logs: Path, lifetime: Lifetime
) -> Process:
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Only a prctl(2) call with a preloaded libc runs between fork and exec.
            preexec_fn=_child_setup(lifetime),
        )
    st = _stat(proc.pid)
    return Process(
        name=name, pid=proc.pid, start_ticks=st[1] if st else 0, port=port, log=log
    )


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _opener(context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    # No proxies: these are loopback addresses whatever $https_proxy says.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def _wait_http(
    proc: Process,
    url: str,
    *,
    context: ssl.SSLContext | None,
    deadline: float,
    accept: Callable[[bytes], bool],
) -> None:
    opener = _opener(context)
    last = "no answer"
    while True:
        if not is_alive(proc):
            raise LocalClusterError(
                f"{proc.name} exited during start-up; last lines of {proc.log}:\n"
                f"{_log_tail(proc.log)}"
            )
        try:
            with opener.open(url, timeout=2) as resp:
                body: bytes = resp.read()
                if resp.status == 200 and accept(body):
                    return
                last = f"HTTP {resp.status}: {body[:200]!r}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise LocalClusterError(
                f"{proc.name} not ready at {url} in time ({last}); last lines of {proc.log}:\n"
                f"{_log_tail(proc.log)}"
            )
        time.sleep(0.1)


def client_ssl_context(pki: Pki) -> ssl.SSLContext:
    """TLS context trusting the local CA and presenting the admin client certificate."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return ctx


def write_kubeconfig(path: Path, *, server: str, pki: Pki) -> Path:
    """An admin kubeconfig with the certificates embedded (usable from any directory)."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CLUSTER_NAME,
             "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)}}
        ],
        "users": [
            {"name": "admin",
             "user": {"client-certificate-data": b64(pki.admin_cert),
                      "client-key-data": b64(pki.admin_key)}}
        ],
        "contexts": [
            {"name": CLUSTER_NAME,
             "context": {"cluster": CLUSTER_NAME, "user": "admin", "namespace": "default"}}
        ],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    }
    _write(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path


def _etcd_argv(binaries: Binaries, data: Path, *, client: int, peer: int) -> list[str]:
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    return [
        str(binaries.etcd),
        "--name=default",
        f"--data-dir={data}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def _apiserver_argv(binaries: Binaries, pki: Pki, *, port: int, etcd_port: int) -> list[str]:
    return [
        str(binaries.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--advertise-address=127.0.0.1",
        f"--cert-dir={pki.directory}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.0.0.0/24",
        f"--service-account-issuer=https://127.0.0.1:{port}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        # No controller-manager token controller creates default service accounts for Pods.
        "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
        # Do not publish 127.0.0.1 as the `kubernetes` Service endpoint.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        "--v=0",
    ]


def _controller_manager_argv(binary: Path, kubeconfig: Path, pki: Pki) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--controllers={','.join(GC_CONTROLLERS)}",
        "--leader-elect=false",
        "--secure-port=0",  # serve nothing: it is driven only through the API server
        f"--root-ca-file={pki.ca_cert}",
        f"--service-account-private-key-file={pki.sa_key}",
        "--use-service-account-credentials=false",
        "--v=0",
    ]


def start(
    directory: Path,
    *,
    binaries: Binaries,
    lifetime: Lifetime,
    crds: Sequence[Mapping[str, Any]] = (),
    apiserver_args: Sequence[str] = (),
    timeout_s: float = 90.0,
    log: Callable[[str], None] | None = None,
) -> Cluster:
    """Start etcd, kube-apiserver and (when built) the garbage collector, ready to use.

    Ready means: /readyz answers ok, the `crds` are Established, and the garbage collector
    (started after the CRDs, so it watches their kinds from the start) has collected a probe
    object. Each start is a fresh cluster (etcd data is wiped); the PKI in `directory` is
    reused so a kubeconfig handed out earlier stays valid. Ports are picked free on
    127.0.0.1; a start that loses a port race is retried with new ports. On failure
    everything started so far is stopped and LocalClusterError names the process and shows
    its log tail. Not idempotent: stop a running cluster in the same directory first.
    `apiserver_args` are appended to kube-apiserver's flags (e.g. `--watch-cache=false`).
    """
    for attempt in range(3):
        try:
            return _start_once(
                directory, binaries=binaries, lifetime=lifetime, crds=crds,
                apiserver_args=apiserver_args, timeout_s=timeout_s, log=log,
            )
        except LocalClusterError as exc:
            if attempt == 2 or "address already in use" not in str(exc):
                raise
            if log:
                log(f"port race ({exc}); retrying with new ports")
    raise AssertionError("unreachable")


def _start_once(
    directory: Path,
    *,
    binaries: Binaries,
    lifetime: Lifetime,
    crds: Sequence[Mapping[str, Any]],
    apiserver_args: Sequence[str],
    timeout_s: float,
    log: Callable[[str], None] | None,
) -> Cluster:
    say = log or (lambda _msg: None)
    directory.mkdir(parents=True, exist_ok=True)
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)
    pki = ensure_pki(directory / "pki")
    data = directory / "etcd-data"
    shutil.rmtree(data, ignore_errors=True)
    began = time.monotonic()
    deadline = began + timeout_s
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = directory / "kubeconfig"
    cluster = Cluster(
        directory=directory, server=server, kubeconfig=kubeconfig, processes=(), started_in_s=0
    )

    def record(proc: Process) -> None:
        nonlocal cluster
        cluster = Cluster(
            directory=directory, server=server, kubeconfig=kubeconfig,
            processes=(*cluster.processes, proc), started_in_s=time.monotonic() - began,
        )
        _save(cluster)

    try:
        etcd = _launch(
            "etcd", _etcd_argv(binaries, data, client=etcd_port, peer=peer_port),
            port=etcd_port, logs=logs, lifetime=lifetime,
        )
        record(etcd)
        _wait_http(
            etcd, f"http://127.0.0.1:{etcd_port}/health", context=None, deadline=deadline,
            accept=lambda body: b'"true"' in body,
        )
        say(f"etcd ready on 127.0.0.1:{etcd_port} ({time.monotonic() - began:.1f} s)")
        api = _launch(
            "kube-apiserver",
            [*_apiserver_argv(binaries, pki, port=api_port, etcd_port=etcd_port),
             *apiserver_args],
            port=api_port, logs=logs, lifetime=lifetime,
        )
        record(api)
        _wait_http(
            api, f"{server}/readyz", context=client_ssl_context(pki), deadline=deadline,
            accept=lambda body: body.strip() == b"ok",
        )
        say(f"kube-apiserver ready at {server} ({time.monotonic() - began:.1f} s)")
        write_kubeconfig(kubeconfig, server=server, pki=pki)
        api = _client(kubeconfig)
        try:
            if crds:
                install_crds(api, crds, timeout_s=max(1.0, deadline - time.monotonic()))
                say(f"{len(crds)} CRDs Established ({time.monotonic() - began:.1f} s)")
            kcm = binaries.kube_controller_manager
            if kcm is not None:
                gc = _launch(
                    "kube-controller-manager", _controller_manager_argv(kcm, kubeconfig, pki),
                    port=0, logs=logs, lifetime=lifetime,
                )
                record(gc)
                _wait_for_garbage_collector(api, gc, deadline=deadline)
                say(f"garbage collector running ({time.monotonic() - began:.1f} s)")
            else:
                say("kube-controller-manager not built: no garbage collection")
        finally:
            api.close()
    except BaseException:
        stop(directory)
        raise
    cluster = dataclasses.replace(cluster, started_in_s=time.monotonic() - began)
    _save(cluster)
    return cluster


def launch_extra(
    cluster: Cluster, name: str, argv: Sequence[str], *, port: int, lifetime: Lifetime
) -> tuple[Cluster, Process]:
    """Start one more process beside a running cluster (Cluster API core, see capi.py) and
    record it in state.json, so `stop` (and `metalcubed kube stop`) stops it with the rest.

    Returns the updated Cluster and the new Process; its log is `logs/<name>.log`.
    """
    proc = _launch(name, argv, port=port, logs=cluster.directory / "logs", lifetime=lifetime)
    updated = dataclasses.replace(cluster, processes=(*cluster.processes, proc))
    _save(updated)
    return updated, proc


def wait_http(proc: Process, url: str, *, deadline: float) -> None:
    """Wait until plain-HTTP `url` answers 200 (a health endpoint of a launched process).

    Raises LocalClusterError with the process's log tail if it exits or `deadline`
    (time.monotonic) passes.
    """
    _wait_http(proc, url, context=None, deadline=deadline, accept=lambda _body: True)


def _client(kubeconfig: Path) -> Any:
    from kubernetes import config as kconfig

    return kconfig.new_client_from_config(config_file=str(kubeconfig))


def _wait_for_garbage_collector(api: Any, gc: Process, *, deadline: float) -> None:
    """Create a ConfigMap owned by another, delete the owner, wait for the dependent to go."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api)
    name = f"metalcubed-gc-probe-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    owner = core.create_namespaced_config_map(
        "default", {"metadata": {"name": name}}, _preload_content=False
    )
    uid = json.loads(owner.data)["metadata"]["uid"]
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid}
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": f"{name}-dependent", "ownerReferences": [ref]}},
        _preload_content=False,
    )
    core.delete_namespaced_config_map(name, "default", _preload_content=False)
    while True:
        if not is_alive(gc):
            raise LocalClusterError(
                f"{gc.name} exited during start-up; last lines of {gc.log}:\n{_log_tail(gc.log)}"
            )
        try:
            core.read_namespaced_config_map(f"{name}-dependent", "default",
                                            _preload_content=False)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return
            raise
        if time.monotonic() > deadline:
            raise LocalClusterError(
                f"the garbage collector did not collect a probe in time; see {gc.log}"
            )
        time.sleep(0.1)


def stop(directory: Path, *, grace_s: float = 10.0) -> list[str]:
    """Stop the processes recorded in `directory` (SIGTERM, then SIGKILL after `grace_s`).

    Idempotent: processes already gone (or whose pid now belongs to another process) are
    skipped. Returns the names of the processes that were signalled. The state file is
    removed; logs, PKI and kubeconfig stay for inspection.
    """
    cluster = load(directory)
    if cluster is None:
        return []
    stopped: list[str] = []
    # Reverse start order: clients first, etcd last.
    for proc in reversed(cluster.processes):
        if _terminate(proc, grace_s=grace_s):
            stopped.append(proc.name)
    with contextlib.suppress(FileNotFoundError):
        state_file(directory).unlink()
    return stopped


def _terminate(proc: Process, *, grace_s: float) -> bool:
    if not is_alive(proc):
        return False
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        until = time.monotonic() + wait_s
        while time.monotonic() < until:
            if not is_alive(proc):
                return True
            time.sleep(0.05)
    if is_alive(proc):
        print(f"warning: {proc.name} (pid {proc.pid}) survived SIGKILL", file=sys.stderr)
    return True


# --- CRDs ------------------------------------------------------------------------------------


def install_crds(
    api_client: Any, crds: Iterable[Mapping[str, Any]], *, timeout_s: float = 60.0
) -> None:
    """Create or replace CustomResourceDefinitions and wait until each is Established.

    `api_client` is a `kubernetes.client.ApiClient`. Raises LocalClusterError on timeout,
    naming the CRD and its last conditions.
    """
    from kubernetes import client as k8s

    ext = k8s.ApiextensionsV1Api(api_client)
    names: list[str] = []
    for crd in crds:
        name = crd["metadata"]["name"]
        names.append(name)
        try:
            ext.create_custom_resource_definition(body=dict(crd), _preload_content=False)
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
            current = json.loads(
                ext.read_custom_resource_definition(name, _preload_content=False).data
            )
            body = dict(crd)
            body["metadata"] = dict(
                crd["metadata"], resourceVersion=current["metadata"]["resourceVersion"]
            )
            ext.replace_custom_resource_definition(name, body=body, _preload_content=False)
    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            current = json.loads(
                ext.read_custom_resource_definition(name, _preload_content=False).data
            )
            conditions = {
                c["type"]: c["status"]
                for c in (current.get("status") or {}).get("conditions") or []
            }
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise LocalClusterError(f"CRD {name} not Established in time: {conditions}")
            time.sleep(0.1)
