"""The lab: emulated servers behind real BMC protocols, and the real manager driving them.

`Lab(config).start()` composes, on 127.0.0.1 only:

- an image server with the deploy kernel and ramdisk (stand-ins: the manager's
  DEPLOY_KERNEL_URL and DEPLOY_RAMDISK_URL, from which its boot server builds each
  virtual-media host its own deploy ISO) and a raw OS image with its sha256 checksum files
  (image.py);
- the manager, as production runs it: with an API server (`kubeconfig`), the real
  `metalcubed manager --provisioner engine` process (subprocess; its agent API, boot server,
  metrics and probes on loopback ports, DEPLOY_*_URL and PROVISIONING_LIMIT in its
  environment, the lab's hardware timings as its engine flags); with the memory store, the same
  composition in this process (controllers/manager.compose over controllers/memory.LockedStore:
  informers, workqueue, core/wiring's event mapping, the engine with its agent API over the
  production BMC drivers);
- the BMC shards (shard.py): emulated servers behind Redfish (sushy-tools) and IPMI (pyghmi)
  BMCs, with their deploy agents, which look up and heartbeat at the manager's agent API; in
  processes of their own (`hosts_per_process`) or here;
- one Secret and one BareMetalHost per server, created in the store and written as manifests
  (`<dir>/manifests/<host>.yaml`) for `kubectl apply`.

`provision()` gives every host the OS image (URL and sha256 checksum); `snapshot()` is what
`devenv status` shows. `stop()` stops everything `start()` started, in reverse order; with an
API server it first deletes the lab's hosts and Secrets (the controller deprovisions and
releases them; finalizers left after `cleanup_timeout_s` are removed so nothing is stuck).
"""

import base64
import concurrent.futures
import contextlib
import ctypes
import gc
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from metalcubed.controllers import engine_services, manager, memory
from metalcubed.controllers.bmc.redfish import capabilities as redfish_caps
from metalcubed.controllers.kube import client as kube_client
from metalcubed.controllers.kube import metrics
from metalcubed.controllers.kube import store as kube_store
from metalcubed.core import bmc, outcome, ports
from metalcubed.core import memory_store as core_memory_store
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.provisioning import context
from metalcubed.simulators import imageserver
from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import control, image, shard, status
from metalcubed.simulators.devenv.libvirtlab import backend as libvirt_backend

log = logging.getLogger(__name__)

DEPLOY_KERNEL = "ipa.kernel"
DEPLOY_RAMDISK = "ipa.initramfs"
LABEL = "metalcubed.io/devenv"
"""Label on every object the lab creates (value: the lab's id)."""
KUBE_QPS = 200.0
KUBE_BURST = 400


class LabError(RuntimeError):
    """The lab cannot start (a message for the user, naming what failed)."""


@dataclass(slots=True)
class LabEvents:
    """ports.EventRecorder for the memory-store lab: logs each Event, keeps the latest ones."""

    keep: int = 1000
    recent: deque[dict[str, str]] = field(default_factory=deque)
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, obj: meta.Resource, *, type: ports.EventType, reason: str,
               message: str) -> None:
        entry = {"object": obj.metadata.name, "type": type.value, "reason": reason,
                 "message": message, "time": time.strftime("%H:%M:%S")}
        with self.lock:
            self.recent.append(entry)
            while len(self.recent) > self.keep:
                self.recent.popleft()
            self.counts[type.value] += 1
        level = logging.WARNING if type is ports.EventType.WARNING else logging.INFO
        log.log(level, "event %s %s %s: %s", obj.metadata.name, type.value, reason, message)

    def latest(self, count: int = 20) -> list[dict[str, str]]:
        with self.lock:
            return list(self.recent)[-count:]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_for(info: shard.HostInfo, config: lab_config.LabConfig, lab_id: str) -> meta.Secret:
    return meta.Secret(
        metadata=meta.ObjectMeta(name=f"{info.name}-bmc-secret", namespace=config.namespace,
                                 labels={LABEL: lab_id}),
        type="Opaque",
        data={"username": _b64(config.username), "password": _b64(config.password)},
    )


def host_for(info: shard.HostInfo, config: lab_config.LabConfig, lab_id: str
             ) -> bmh.BareMetalHost:
    return bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name=info.name, namespace=config.namespace,
                                 labels={LABEL: lab_id}),
        spec=bmh.BareMetalHostSpec.model_validate({
            "online": True,
            # The libvirt lab's network-booted domains use SeaBIOS (libvirtlab/backend.py).
            "bootMode": ("legacy" if config.backend == "libvirt"
                         and info.scheme != "redfish-virtualmedia" else "UEFI"),
            "bootMACAddress": info.boot_mac,
            "bmc": {"address": info.bmc_address, "credentialsName": f"{info.name}-bmc-secret"},
        }),
    )


def manifest(obj: meta.Resource) -> dict[str, Any]:
    """What a user would `kubectl apply`: the object without status or server-set fields."""
    doc = obj.to_wire()
    doc.pop("status", None)
    return doc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the manager's child process: SIGTERM when the lab process dies (Linux
    PR_SET_PDEATHSIG), so a killed lab leaves no manager behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class ManagerProcess:
    """`metalcubed manager --provisioner engine` as a child process, on loopback ports."""

    def __init__(self, argv: list[str], env: dict[str, str], *, health_port: int,
                 metrics_port: int, log_file: IO[str] | None) -> None:
        self.argv = argv
        self.env = env
        self.health_port = health_port
        self.metrics_port = metrics_port
        self._log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout_s: float = 60.0) -> None:
        out = self._log_file if self._log_file is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.argv, env={**os.environ, **self.env}, stdin=subprocess.DEVNULL,
            stdout=out, stderr=out, preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise LabError(f"the manager process exited with status {code} (see lab.log):"
                               f" {' '.join(self.argv[2:])}")
            if self._get("/readyz", self.health_port) == 200:
                return
            time.sleep(0.2)
        raise LabError(f"the manager process was not ready within {timeout_s:.0f} s "
                       "(see lab.log)")

    def _get(self, path: str, port: int) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as rsp:
                return int(rsp.status)
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return None

    def reconciles(self) -> float:
        """controller_runtime_reconcile_total, summed, from the manager's /metrics."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                        timeout=2) as rsp:
                text = rsp.read().decode()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("controller_runtime_reconcile_total{"))

    def stop(self, timeout_s: float = 90.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("manager process %d did not stop in %.0f s: killing it", proc.pid,
                        timeout_s)
            proc.kill()
            proc.wait(timeout=10)


class Lab:
    """See the module docstring. Not reusable: start once, stop once."""

    def __init__(
        self,
        config: lab_config.LabConfig,
        *,
        directory: Path | None = None,
        log_file: IO[str] | None = None,
        lab_id: str = "lab",
        cleanup_timeout_s: float = 60.0,
    ) -> None:
        self.config = lab_config.check(config)
        self.timing = config.hardware()
        self.directory = directory
        self.lab_id = lab_id
        self.cleanup_timeout_s = cleanup_timeout_s
        self._log_file = log_file
        self.clock = memory.WallClock()
        self.images = imageserver.ImageServer()
        self.services: engine_services.EngineServices | None = None
        """The in-process manager's engine services (memory store only)."""
        self.manager_process: ManagerProcess | None = None
        """The `metalcubed manager` process (with an API server)."""
        self.lookup_url = ""
        """The manager's agent API, where the emulated agents look up and heartbeat."""
        self.shards: list[shard.Shard] = []
        self.shard_processes: list[shard.ShardProcess] = []
        self.hosts: list[shard.HostInfo] = []
        self.events = LabEvents()
        self.registry = metrics.new_registry()
        self.runtime_metrics = metrics.RuntimeMetrics(self.registry)
        self.store: ports.Store | None = None
        """Where the lab's objects live (memory store, or the API server)."""
        self.composition: manager.Composition | None = None
        self.api: kube_client.ThrottledApiClient | None = None
        self.image_url = ""
        self.image_checksum = ""
        self.deploy_kernel_url = ""
        self.deploy_ramdisk_url = ""
        self.boot_url = ""
        """The manager's boot server (per-host deploy ISOs under /boot/)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stack: list[Callable[[], None]] = []
        self.vm: libvirt_backend.VmLab | None = None
        """The libvirt backend's VMs, network and BMCs (backend "libvirt")."""

    # --- starting ------------------------------------------------------------------------------

    def start(self, *, enroll: bool = True) -> "Lab":
        """Start the services, BMC shards and controller, then (unless `enroll` is False: call
        `enroll()` later, as the benchmark does to time it) create the hosts."""
        try:
            if self.config.backend == "libvirt":
                self._start_vm_lab()
            self._start_services()
            self._start_manager()
            self._start_shards()
            if enroll:
                self.enroll()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_vm_lab(self) -> None:
        """The libvirt backend: network, pool, images and daemons before the manager (whose
        agent API listens on the network's address); its stop undoes them from its ledger."""
        if self.directory is None:
            raise LabError("the libvirt backend needs a lab directory (for its ledger)")
        self.vm = libvirt_backend.VmLab(self.config, self.directory, self.lab_id,
                                        log_file=self._log_file)
        self._stack.append(self.vm.stop)
        try:
            self.vm.prepare()
        except libvirt_backend.VmLabError as err:
            raise LabError(str(err)) from err

    def _start_services(self) -> None:
        self.images.start()
        self._stack.append(self.images.stop)
        if self.vm is not None:  # the VMs fetch the real images from the network's address
            self.image_url = self.vm.image_url
            self.image_checksum = self.vm.image_checksum
            return
        self.deploy_kernel_url = self.images.add(DEPLOY_KERNEL, b"metalcubed deploy kernel\n")
        self.deploy_ramdisk_url = self.images.add(DEPLOY_RAMDISK,
                                                  b"metalcubed deploy ramdisk\n" * 2048)
        data = image.raw_disk(self.config.image_size_mib)
        self.image_url = self.images.add(image.NAME, data)
        self.image_checksum = image.sha256(data)
        log.info("image server %s", self.images.base_url)

    def _start_shards(self) -> None:
        if self.vm is not None:
            try:
                self.hosts = self.vm.start_hosts()
            except libvirt_backend.VmLabError as err:
                raise LabError(str(err)) from err
            log.info("%d libvirt domains", len(self.hosts))
            return
        specs = [
            shard.ShardSpec(hosts=tuple(plans), username=self.config.username,
                            password=self.config.password, lookup_url=self.lookup_url,
                            deploy_iso_url="", deploy_iso_prefix=f"{self.boot_url}/boot/",
                            timing=self.timing)
            for plans in shard.plan(self.config)
        ]
        if self.config.hosts_per_process:
            try:
                self.shard_processes = shard.start_all(specs, log=self._log_file)
            except shard.ShardError as err:
                raise LabError(str(err)) from err
            for proc in self.shard_processes:
                self._stack.append(proc.stop)
            infos = [p.info for p in self.shard_processes]
        else:
            for spec in specs:
                local = shard.Shard(spec)
                self.shards.append(local)
                self._stack.append(local.stop)
                local.start()
            infos = [s.info for s in self.shards]
        self.hosts = [h for info in infos if info is not None for h in info.hosts]
        log.info("%d hosts on %d BMC shard(s)", len(self.hosts), len(specs))

    @property
    def table(self) -> engine_services.lookup.LockedNodeTable:
        """The in-process manager's node table."""
        if self.services is None:
            raise LabError("the manager runs in its own process: no in-process node table")
        return self.services.table

    @property
    def lookup(self) -> engine_services.lookup.IronicApi:
        """The in-process manager's agent API (its request counts)."""
        if self.services is None:
            raise LabError("the manager runs in its own process: no in-process agent API")
        return self.services.api

    def engine_config(self) -> context.EngineConfig:
        """The engine's settings: the lab's hardware timings."""
        t = self.timing
        return context.EngineConfig(
            poll_s=t.poll_s, short_poll_s=t.short_poll_s, busy_retry_s=t.busy_retry_s,
            ramdisk_timeout_s=max(120.0, 20 * t.agent_boot_s),
            soft_power_off_timeout_s=max(30.0, 10 * t.soft_off_s),
            bios_reboot_timeout_s=max(120.0, 20 * t.power_on_s),
        )

    def _start_manager(self) -> None:
        if self.config.kubeconfig is None:
            self._start_manager_here()
        else:
            self._start_manager_process()

    def _start_manager_here(self) -> None:
        """The memory store: controllers/manager.compose in this process."""
        cfg = self.config
        vm = self.vm
        options = manager.ManagerOptions(
            namespace=cfg.namespace, concurrency=cfg.concurrency, provisioner="engine",
            provisioning_limit=cfg.provisioning_limit, identity=f"devenv-{self.lab_id}",
            agent_api_bind_address=vm.agent_bind if vm else "127.0.0.1:0",
            boot_server_bind_address="127.0.0.1:0",
            deploy_kernel_url=self.deploy_kernel_url, deploy_ramdisk_url=self.deploy_ramdisk_url,
            deploy_iso_url=vm.deploy_iso_url if vm else "",
            agent_timeout_s=self.timing.agent_timeout_s,
            engine=self.engine_config(),
        )
        backend = memory.LockedStore(core_memory_store.MemoryStore(clock=self.clock))
        self.store = backend
        composition = manager.compose(
            options, backend=backend, recorder=self.events, registry=self.registry,
            runtime_metrics=self.runtime_metrics,
            bmo_metrics=metrics.PrometheusMetrics(self.registry), clock=self.clock,
        )
        self.composition = composition
        self._stop.clear()
        self._thread = threading.Thread(target=composition.manager.run, args=(self._stop,),
                                        name="devenv-manager", daemon=True)
        self._thread.start()
        self._stack.append(self._stop_manager)
        if not composition.controller.started.wait(60):
            raise LabError("the controller did not start within 60 s (see the lab log)")
        assert composition.services is not None
        self.services = composition.services.services
        self.lookup_url = self.services.lookup_url
        self.boot_url = self.services.boot_url

    def _start_manager_process(self) -> None:
        """An API server: the real `metalcubed manager --provisioner engine` process."""
        cfg = self.config
        assert cfg.kubeconfig is not None
        self.api = kube_client.new_client(
            kube_client.load_configuration(cfg.kubeconfig), qps=KUBE_QPS, burst=KUBE_BURST,
            connections=16, runtime_metrics=self.runtime_metrics)
        self.store = kube_store.K8sStore(self.api)
        self._ensure_namespace()
        agent, boot, metrics_port, health_port = (_free_port() for _ in range(4))
        # The libvirt lab's VMs reach the agent API on their network's address.
        agent_bind = self.vm.agent_bind if self.vm else f"127.0.0.1:{agent}"
        agent_url = self.vm.agent_url if self.vm else f"http://127.0.0.1:{agent}"
        engine = self.engine_config()
        argv = [
            sys.executable, "-m", "metalcubed.cli", "manager", "--provisioner", "engine",
            "--kubeconfig", cfg.kubeconfig, "--namespace", cfg.namespace,
            "--concurrency", str(cfg.concurrency),
            "--kube-api-qps", str(KUBE_QPS), "--kube-api-burst", str(KUBE_BURST),
            "--agent-api-bind-address", agent_bind,
            "--agent-api-url", agent_url,
            "--boot-server-bind-address", f"127.0.0.1:{boot}",
            "--boot-server-url", f"http://127.0.0.1:{boot}",
            "--metrics-bind-address", f"127.0.0.1:{metrics_port}",
            "--health-probe-bind-address", f"127.0.0.1:{health_port}",
            "--agent-timeout-seconds", str(self.timing.agent_timeout_s),
            "--engine-poll-seconds", str(engine.poll_s),
            "--engine-short-poll-seconds", str(engine.short_poll_s),
            "--engine-busy-retry-seconds", str(engine.busy_retry_s),
            "--ramdisk-timeout-seconds", str(engine.ramdisk_timeout_s),
            "--soft-power-off-timeout-seconds", str(engine.soft_power_off_timeout_s),
        ]
        env = {"DEPLOY_KERNEL_URL": self.deploy_kernel_url,
               "DEPLOY_RAMDISK_URL": self.deploy_ramdisk_url,
               "PROVISIONING_LIMIT": str(cfg.provisioning_limit)}
        if self.vm is not None:  # the prebuilt deploy ISO; PXE is the lab's iPXE script
            env = {"DEPLOY_ISO_URL": self.vm.deploy_iso_url,
                   "PROVISIONING_LIMIT": str(cfg.provisioning_limit)}
        process = ManagerProcess(argv, env, health_port=health_port, metrics_port=metrics_port,
                                 log_file=self._log_file)
        self.manager_process = process
        self._stack.append(process.stop)
        process.start()
        self.lookup_url = agent_url
        self.boot_url = f"http://127.0.0.1:{boot}"
        log.info("manager process %s: agent API %s", process.pid, self.lookup_url)

    def _stop_manager(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=90)
        self._thread = None
        self._close_redfish_sessions()

    def _close_redfish_sessions(self) -> None:
        """Log the drivers out while the emulators still answer (sushy closes a session when
        its client is dropped; after the emulators stop, that would retry into a dead port)."""
        credentials = ports.Credentials(username=self.config.username,
                                        password=self.config.password)
        seen: set[str] = set()
        for host in self.hosts:
            endpoint = host.bmc_address.split("/redfish/", 1)[0]
            if host.scheme == "ipmi" or endpoint in seen:
                continue
            seen.add(endpoint)
            redfish_caps.DEFAULT_CLIENTS.forget(bmc.BmcAccess.of(host.bmc_address, credentials))
        gc.collect()

    def _ensure_namespace(self) -> None:
        from kubernetes import client as k8s

        assert self.api is not None
        try:
            k8s.CoreV1Api(self.api).create_namespace(
                {"metadata": {"name": self.config.namespace}})
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise LabError(f"cannot create namespace {self.config.namespace}: "
                               f"HTTP {exc.status} {exc.reason}") from exc

    def enroll(self) -> None:
        """Create every host's Secret and BareMetalHost (and write their manifests)."""
        assert self.store is not None
        store = self.store
        objects = [(secret_for(h, self.config, self.lab_id), host_for(h, self.config, self.lab_id))
                   for h in self.hosts]
        if self.directory is not None:
            self.write_manifests(self.directory / "manifests", objects)

        def create(pair: tuple[meta.Secret, bmh.BareMetalHost]) -> None:
            for obj in pair:
                try:
                    store.create(obj)
                except outcome.Conflict as err:
                    raise LabError(
                        f"{obj.kind} {self.config.namespace}/{obj.metadata.name} already "
                        f"exists: is another lab using namespace {self.config.namespace}? "
                        f"({err})") from err

        if self.config.kubeconfig is None:
            for pair in objects:
                create(pair)
        else:
            # Registered first: a partly failed enrollment leaves nothing of ours behind (the
            # cleanup selects this lab's label only, never another lab's objects).
            self._stack.append(self._cleanup_kube)
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(create, objects))
        log.info("enrolled %d hosts in namespace %s", len(objects), self.config.namespace)

    @staticmethod
    def write_manifests(directory: Path,
                        objects: Sequence[tuple[meta.Secret, bmh.BareMetalHost]]) -> None:
        # Each manifest holds its host's BMC password: owner-only directory and files (0700 and
        # 0600), removed by `devenv down`.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        for old in directory.glob("*.yaml"):
            old.unlink()
        for secret, host in objects:
            text = yaml.safe_dump_all([manifest(secret), manifest(host)], sort_keys=False)
            control.write_private(directory / f"{host.metadata.name}.yaml", text)

    # --- using -------------------------------------------------------------------------------

    @property
    def keys(self) -> list[meta.ObjectKey]:
        return [meta.ObjectKey(self.config.namespace, h.name) for h in self.hosts]

    def image_spec(self) -> bmh.Image:
        return bmh.Image(url=self.image_url, checksum=self.image_checksum,
                         checksum_type=bmh.ChecksumType.SHA256,
                         format=bmh.ImageFormat(image.FORMAT))

    def set_image(self, key: meta.ObjectKey, image: bmh.Image | None) -> bool:
        """Set (or, with None, remove) one host's `spec.image`, re-read and retried on
        conflicts; False when the host is gone."""
        assert self.store is not None
        for _ in range(20):
            try:
                current = self.store.get(bmh.BareMetalHost, key)
            except outcome.NotFound:
                return False
            spec = change.replace(current.spec, {"image": image})  # typed by the signature
            updated = change.replace(current, {"spec": spec})
            try:
                self.store.update(updated)
                return True
            except outcome.Conflict:
                time.sleep(random.uniform(0.01, 0.05))
            except outcome.NotFound:
                return False
        raise LabError(f"could not update {key}: it kept changing under us")

    def provision(self) -> int:
        """Give every host without an image the lab's OS image; returns how many changed."""
        assert self.store is not None
        wanted = self.image_spec()
        changed = 0
        for host in self.store.list(bmh.BareMetalHost, namespace=self.config.namespace):
            if host.spec.image is None and self.set_image(host.key, wanted):
                changed += 1
        return changed

    def host_objects(self) -> list[bmh.BareMetalHost]:
        assert self.store is not None
        return self.store.list(bmh.BareMetalHost, namespace=self.config.namespace)

    def snapshot(self) -> dict[str, Any]:
        """`devenv status --json`: the lab's services and every host's row."""
        host_rows = status.rows(self.host_objects())
        if self.vm is not None:  # each VM's domain, its state, address and OS report
            domains = self.vm.domain_rows()
            for row in host_rows:
                row.update(domains.get(row["name"], {}))
        return {"lab": self.describe(), "summary": status.summary(host_rows),
                "hosts": host_rows, "events": self.events.latest()}

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        redfish = sorted({p.info.redfish_endpoint for p in self.shard_processes if p.info}
                         | {s.info.redfish_endpoint for s in self.shards if s.info})
        if self.vm is not None and self.vm.sushy is not None:
            redfish.append(self.vm.sushy.endpoint)
        return {
            "id": self.lab_id,
            "hosts": cfg.hosts,
            "bmc": cfg.bmc.value,
            "store": "memory" if cfg.kubeconfig is None else "kubernetes",
            "kubeconfig": cfg.kubeconfig,
            "namespace": cfg.namespace,
            "timing": cfg.timing,
            "imageServer": self.images.base_url,
            "image": {"url": self.image_url, "checksum": self.image_checksum,
                      "checksumType": "sha256", "format": image.FORMAT},
            "deployKernel": self.deploy_kernel_url,
            "deployRamdisk": self.deploy_ramdisk_url,
            "bootServer": self.boot_url,
            "lookupService": self.lookup_url,
            "managerProcess": self.manager_process.pid if self.manager_process else None,
            "redfishEndpoints": [e for e in redfish if e],
            "bmcProcesses": [p.pid for p in self.shard_processes],
            "manifests": str(self.directory / "manifests") if self.directory else None,
            "backend": cfg.backend,
            "libvirt": self.vm.describe() if self.vm is not None else None,
        }

    def shard_stats(self) -> list[dict[str, Any]]:
        if self.shard_processes:
            return [p.stats() for p in self.shard_processes]
        return [s.stats() for s in self.shards]

    def reconciles(self) -> float:
        if self.manager_process is not None:
            return self.manager_process.reconciles()
        total = 0.0
        for family in self.runtime_metrics.reconcile_total.collect():
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return total

    # --- stopping ------------------------------------------------------------------------------

    def _cleanup_kube(self) -> None:
        """Delete the lab's hosts and Secrets from the API server while the controller runs."""
        store = self.store
        if store is None:
            return
        ns = self.config.namespace
        selector = f"{LABEL}={self.lab_id}"
        for host in store.list(bmh.BareMetalHost, namespace=ns, label_selector=selector):
            with contextlib.suppress(outcome.NotFound):
                store.delete(bmh.BareMetalHost, host.key)
        deadline = time.monotonic() + self.cleanup_timeout_s
        left = store.list(bmh.BareMetalHost, namespace=ns, label_selector=selector)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = store.list(bmh.BareMetalHost, namespace=ns, label_selector=selector)
        for host in left:
            log.warning("host %s still deleting after %.0f s: removing its finalizers",
                        host.metadata.name, self.cleanup_timeout_s)
            with contextlib.suppress(outcome.NotFound, outcome.Conflict):
                store.update(host.with_meta(finalizers=()))
        for secret in store.list(meta.Secret, namespace=ns, label_selector=selector):
            with contextlib.suppress(outcome.NotFound):
                store.delete(meta.Secret, secret.key)

    def stop(self) -> None:
        """Stop everything start() started, newest first. Idempotent."""
        while self._stack:
            step = self._stack.pop()
            try:
                step()
            except Exception:
                log.exception("while stopping the lab")
        if self.api is not None:
            self.api.close()
            self.api = None

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
