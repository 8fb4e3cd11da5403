"""A BMC shard: a slice of the lab's emulated servers with their BMCs and deploy agents.

A shard holds, for its hosts:

- the emulated servers (`simulators.hostmodel`), numbered lab-wide so that names, MACs and
  serials never collide across shards;
- one Redfish emulator (sushy-tools on 127.0.0.1, one endpoint serving every Redfish host of
  the shard, as sushy-tools does in metal3-dev-env) and one IPMI BMC per IPMI host (pyghmi,
  UDP, ephemeral ports);
- the deploy-agent emulator and its HTTP API: an agent comes up when a host boots the ramdisk
  and announces itself to the lab's lookup service over HTTP.

The agents must live beside the servers they run on (they hook the servers' boots), so the
agent emulator is part of the shard; everything else the engine needs (lookup service, image
server) stays in the lab process and is reached over HTTP.

A shard runs in the lab process (`Shard`) or in a process of its own (`ShardProcess`, running
this module): the sushy-tools app and pyghmi's server are CPU-bound Python, and a separate
interpreter per shard keeps them from queueing behind the controllers on one lock. The process
protocol is one JSON line each way over stdin/stdout: the parent writes the `ShardSpec`, the
shard answers its `ShardInfo`; then each `stats` line is answered with a stats line, and end
of input (the parent closed the pipe, or died) stops the shard. SIGTERM stops it too.
"""

import contextlib
import dataclasses
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from metalcubed.simulators import hostmodel
from metalcubed.simulators.agent import emulator, lookup, server
from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.ipmi import emulator as ipmi_emulator
from metalcubed.simulators.redfish import emulator as redfish_emulator


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPlan:
    index: int
    """Lab-wide number: picks the inventory (MACs, serials)."""
    name: str
    scheme: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardSpec:
    hosts: tuple[HostPlan, ...]
    username: str
    password: str
    lookup_url: str
    deploy_iso_url: str
    """A prebuilt deploy ISO (DEPLOY_ISO_URL); "" when the boot server builds one per host."""
    timing: lab_config.HardwareTiming
    deploy_iso_prefix: str = ""
    """URL prefix of the boot server's per-host deploy ISOs (`<boot-server-url>/boot/`)."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ShardSpec":
        raw = json.loads(text)
        return cls(
            hosts=tuple(HostPlan(**h) for h in raw["hosts"]),
            username=raw["username"],
            password=raw["password"],
            lookup_url=raw["lookup_url"],
            deploy_iso_url=raw["deploy_iso_url"],
            timing=lab_config.HardwareTiming(**raw["timing"]),
            deploy_iso_prefix=raw.get("deploy_iso_prefix", ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HostInfo:
    """One emulated server as the lab enrolls it."""

    index: int
    name: str
    scheme: str
    bmc_address: str
    boot_mac: str
    system_uuid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardInfo:
    pid: int
    redfish_endpoint: str
    """"" when the shard has no Redfish host."""
    agent_api: str
    hosts: tuple[HostInfo, ...]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ShardInfo":
        raw = json.loads(text)
        return cls(pid=raw["pid"], redfish_endpoint=raw["redfish_endpoint"],
                   agent_api=raw["agent_api"],
                   hosts=tuple(HostInfo(**h) for h in raw["hosts"]))


def plan(config: lab_config.LabConfig) -> list[list[HostPlan]]:
    """The lab's hosts, cut into shards of `hosts_per_process` (one shard when it is 0)."""
    hosts = [HostPlan(index=i, name=config.host_name(i), scheme=s)
             for i, s in enumerate(config.schemes())]
    size = config.hosts_per_process or len(hosts)
    return [hosts[i:i + size] for i in range(0, len(hosts), size)]


class Shard:
    """A shard in the current process. `start()` returns what the lab needs to enroll it."""

    def __init__(self, spec: ShardSpec) -> None:
        self.spec = spec
        t = spec.timing
        power = hostmodel.PowerTiming(power_on_s=t.power_on_s, soft_off_s=t.soft_off_s,
                                      hard_off_s=t.hard_off_s)
        self.models = [
            hostmodel.HostModel(name=h.name, inventory=hostmodel.make_inventory(h.index),
                                timing=power, seed=h.index)
            for h in spec.hosts
        ]
        pairs = list(zip(spec.hosts, self.models, strict=True))
        credentials = (spec.username, spec.password)
        redfish_hosts = [m for h, m in pairs if h.scheme != "ipmi"]
        ipmi_hosts = [m for h, m in pairs if h.scheme == "ipmi"]
        self.redfish = (redfish_emulator.RedfishEmulator(redfish_hosts, credentials=credentials)
                        if redfish_hosts else None)
        self.ipmi = (ipmi_emulator.IpmiEmulator(ipmi_hosts, credentials=credentials)
                     if ipmi_hosts else None)
        self.agents = emulator.AgentEmulator(
            conductor=lookup.HttpConductor(spec.lookup_url),
            deploy_iso_urls={spec.deploy_iso_url} if spec.deploy_iso_url else (),
            deploy_iso_prefix=spec.deploy_iso_prefix,
            timing=emulator.AgentTiming(boot_s=t.agent_boot_s, heartbeat_s=t.heartbeat_s,
                                        clean_s=t.clean_s),
        )
        self.agent_api = server.AgentServer(self.agents)
        self.info: ShardInfo | None = None
        self._started_at = 0.0

    def start(self) -> ShardInfo:
        if self.info is not None:
            return self.info
        self._started_at = time.monotonic()
        if self.redfish is not None:
            self.redfish.start()
        if self.ipmi is not None:
            self.ipmi.start()
        agent_url = self.agent_api.start()
        self.agents.start()
        hosts = []
        for plan_, model in zip(self.spec.hosts, self.models, strict=True):
            if plan_.scheme == "ipmi":
                assert self.ipmi is not None
                address = self.ipmi.bmc_address(model)
            else:
                assert self.redfish is not None
                address = self.redfish.bmc_address(model, plan_.scheme)
            self.agents.attach(model, bmc_address=address)
            hosts.append(HostInfo(index=plan_.index, name=plan_.name, scheme=plan_.scheme,
                                  bmc_address=address, boot_mac=model.inventory.nics[0].mac,
                                  system_uuid=model.uuid))
        self.info = ShardInfo(
            pid=os.getpid(),
            redfish_endpoint=self.redfish.endpoint if self.redfish is not None else "",
            agent_api=agent_url,
            hosts=tuple(hosts),
        )
        return self.info

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and `devenv status`: requests served, boots, CPU, memory."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "pid": os.getpid(),
            "hosts": len(self.models),
            "redfish_requests": self.redfish.request_count if self.redfish is not None else 0,
            "redfish_sessions": self.redfish.sessions_created if self.redfish is not None else 0,
            "agent_requests": self.agent_api.requests,
            "ramdisk_boots": self.agents.ramdisk_boots,
            "uptime_s": round(time.monotonic() - self._started_at, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "max_rss_mib": round(usage.ru_maxrss / 1024, 1),
        }

    def stop(self) -> None:
        self.agents.stop()
        self.agent_api.stop()
        if self.redfish is not None:
            self.redfish.stop()
        if self.ipmi is not None:
            self.ipmi.stop()
        for model in self.models:
            model.close()


class ShardError(RuntimeError):
    pass


class ShardProcess:
    """A shard in a child process (this module run with `python -m`); see the docstring.

    The child's stderr goes to `log` (the lab's log file). The child stops when its stdin
    closes, so it never outlives the lab process, however that one ends.
    """

    def __init__(self, spec: ShardSpec, *, log: IO[str] | None = None) -> None:
        self.spec = spec
        self._log = log
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.info: ShardInfo | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def launch(self) -> None:
        """Start the child and hand it its spec (returns at once; see `wait_ready`)."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "metalcubed.simulators.devenv.shard"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            bufsize=1,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(self.spec.to_json() + "\n")
        self._proc.stdin.flush()

    def wait_ready(self, timeout_s: float = 60.0) -> ShardInfo:
        """The child's ShardInfo (ShardError if it dies or does not answer in time)."""
        self.info = ShardInfo.from_json(self._read_line(timeout_s))
        return self.info

    def _read_line(self, timeout_s: float) -> str:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not line:
            code = proc.poll()
            raise ShardError(
                f"BMC shard process {proc.pid} "
                + ("did not answer in time" if code is None else f"exited with status {code}")
                + " (see the lab log)")
        return line

    def stats(self, timeout_s: float = 10.0) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise ShardError("BMC shard process is not running")
        with self._lock:
            proc.stdin.write("stats\n")
            proc.stdin.flush()
            doc: dict[str, Any] = json.loads(self._read_line(timeout_s))
            return doc

    def stop(self, timeout_s: float = 10.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):  # the child is gone already
                proc.stdin.close()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def start_all(specs: Sequence[ShardSpec], *, log: IO[str] | None,
              timeout_s: float = 60.0) -> list[ShardProcess]:
    """Launch every shard process, then wait for them all (they start in parallel)."""
    shards = [ShardProcess(spec, log=log) for spec in specs]
    try:
        for shard in shards:
            shard.launch()
        for shard in shards:
            shard.wait_ready(timeout_s)
    except BaseException:
        for shard in shards:
            shard.stop(timeout_s=5)
        raise
    return shards


def main() -> int:
    """The shard process: spec in, info out, then stats on request until stdin closes."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the lab process decides when we stop
    first = sys.stdin.readline()
    if not first:
        return 1
    shard = Shard(ShardSpec.from_json(first))
    try:
        info = shard.start()
        sys.stdout.write(info.to_json() + "\n")
        sys.stdout.flush()
        for line in sys.stdin:
            if line.strip() == "stats":
                sys.stdout.write(json.dumps(shard.stats()) + "\n")
                sys.stdout.flush()
    finally:
        shard.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
