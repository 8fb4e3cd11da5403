"""What a lab is made of: how many hosts, which BMC protocols, how fast the hardware is.

`LabConfig` is the whole description of a lab; `metalcubed devenv up` builds one from its flags
(`check` turns bad values into `ConfigError`s naming the flag) and hands it, as JSON, to the
background lab process. `schemes` decides each host's BMC scheme:

- `redfish`: every host behind the Redfish emulator, booting the deploy ISO from virtual
  media (`redfish-virtualmedia`, what metal3-dev-env uses);
- `ipmi`: every host behind its own IPMI BMC (pyghmi, UDP), booting over the network;
- `mixed`: Redfish and IPMI alternate, and every other Redfish host boots over the network
  (`redfish`, PXE): host 0 redfish-virtualmedia, 1 ipmi, 2 redfish, 3 ipmi, 4 ...

`HardwareTiming` is how long the emulated hardware takes (power transitions, the ramdisk's
boot, agent heartbeats) together with the engine's polling periods, which have to match it:
polling a 0.3 s power-on every 10 s would make the lab wait for the controller, not for the
hardware. `FAST` is for tests and benchmarks, `SLOW` makes each step visible to a person.
"""

import dataclasses
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class BmcMix(StrEnum):
    REDFISH = "redfish"
    IPMI = "ipmi"
    MIXED = "mixed"


class ConfigError(ValueError):
    """A bad lab setting; `flag` names the command-line option it came from."""

    def __init__(self, flag: str, problem: str) -> None:
        super().__init__(f"{flag}: {problem}")
        self.flag = flag
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareTiming:
    """Emulated hardware durations and the engine's matching polling periods (seconds)."""

    power_on_s: float
    soft_off_s: float
    hard_off_s: float
    agent_boot_s: float
    """From the ramdisk's boot to the agent's first lookup."""
    heartbeat_s: float
    clean_s: float
    poll_s: float
    """Engine: polling period for the ramdisk, inspection, cleaning and image writes."""
    short_poll_s: float
    """Engine: polling period for power and media changes."""
    busy_retry_s: float
    """Engine: delay after a busy BMC that gave no Retry-After."""

    @property
    def agent_timeout_s(self) -> float:
        """An agent silent for this long is gone (a generous multiple of the heartbeat)."""
        return max(30.0, 10 * self.heartbeat_s)


FAST = HardwareTiming(
    power_on_s=0.3, soft_off_s=0.2, hard_off_s=0.05, agent_boot_s=0.2, heartbeat_s=5.0,
    clean_s=0.0, poll_s=0.5, short_poll_s=0.2, busy_retry_s=0.5,
)
SLOW = HardwareTiming(
    power_on_s=4.0, soft_off_s=3.0, hard_off_s=0.5, agent_boot_s=5.0, heartbeat_s=5.0,
    clean_s=3.0, poll_s=3.0, short_poll_s=1.0, busy_retry_s=2.0,
)
TIMINGS = {"fast": FAST, "slow": SLOW}
VM = HardwareTiming(
    power_on_s=1.0, soft_off_s=10.0, hard_off_s=1.5, agent_boot_s=30.0, heartbeat_s=10.0,
    clean_s=1.0, poll_s=2.0, short_poll_s=1.0, busy_retry_s=2.0,
)
"""The libvirt backend's real VMs under TCG (docs/devenv.md's figures): a ramdisk boot takes
10-25 s alone and more under load, so the engine's ramdisk timeout (20 x agent_boot_s) is 10
minutes; `--timing` does not apply to them."""
BACKENDS = ("emulated", "libvirt")
MAX_VMS = 8
"""Most libvirt VMs per lab: each costs ~0.7 GB and 9-20 CPU-seconds per boot under TCG."""

DEFAULT_NAMESPACE = "metal3"
MAX_HOSTS = 5000
"""Most hosts in one lab (`--hosts`, `--hosts-per-process`): a lab is one machine's emulators."""
MAX_CONCURRENCY = 256
"""Most reconcile workers (`--concurrency`): each is a thread (the manager's limit too)."""
MAX_TIMEOUT_S = 7 * 86400.0
"""Longest `--timeout` (a week): a longer wait is a mistake, not a plan."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class LabConfig:
    hosts: int
    bmc: BmcMix = BmcMix.REDFISH
    namespace: str = DEFAULT_NAMESPACE
    kubeconfig: str | None = None
    """Run against this API server; None: the lab's own memory store."""
    timing: str = "fast"
    """A key of TIMINGS."""
    hosts_per_process: int = 250
    """BMC emulators (and their hosts' agents) run in processes of this many hosts each, so
    the emulators do not share one interpreter lock with the controllers; 0 runs them inside
    the lab process."""
    concurrency: int = 16
    """Reconcile workers."""
    provisioning_limit: int = 20
    """PROVISIONING_LIMIT: hosts busy at once on network-booted BMCs (bmo.md 6.1)."""
    image_size_mib: int = 8
    prefix: str = "host"
    username: str = "admin"
    password: str = "password"
    """BMC password of every emulated host (the lab generates one per lab)."""
    backend: str = "emulated"
    """"emulated" (simulators/hostmodel servers) or "libvirt" (real TCG VMs, libvirtlab/)."""

    def hardware(self) -> HardwareTiming:
        return VM if self.backend == "libvirt" else TIMINGS[self.timing]

    def schemes(self) -> list[str]:
        return [scheme_for(i, self.bmc) for i in range(self.hosts)]

    def host_name(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "LabConfig":
        raw: dict[str, Any] = json.loads(text)
        raw["bmc"] = BmcMix(raw["bmc"])
        return cls(**raw)


def scheme_for(index: int, mix: BmcMix) -> str:
    if mix is BmcMix.REDFISH:
        return "redfish-virtualmedia"
    if mix is BmcMix.IPMI:
        return "ipmi"
    return ("redfish-virtualmedia", "ipmi", "redfish", "ipmi")[index % 4]


def check(config: LabConfig) -> LabConfig:
    """Raise ConfigError (naming the flag) for a setting the lab cannot run with."""
    if config.hosts < 1:
        raise ConfigError("--hosts", f"must be at least 1 (got {config.hosts})")
    if config.hosts > MAX_HOSTS:
        raise ConfigError("--hosts", f"at most {MAX_HOSTS} hosts per lab (got {config.hosts})")
    if config.timing not in TIMINGS:
        raise ConfigError("--timing", f"must be one of {', '.join(TIMINGS)}")
    if not _DNS_LABEL.match(config.namespace) or len(config.namespace) > 63:
        raise ConfigError("--namespace", f"{config.namespace!r} is not a valid namespace name")
    if not 1 <= config.concurrency <= MAX_CONCURRENCY:
        raise ConfigError("--concurrency", f"must be 1 to {MAX_CONCURRENCY} (got "
                          f"{config.concurrency}): each worker is a thread")
    if not 0 <= config.hosts_per_process <= MAX_HOSTS:
        raise ConfigError("--hosts-per-process", f"must be 0 (in the lab process) to {MAX_HOSTS} "
                          f"(got {config.hosts_per_process})")
    if config.provisioning_limit < 1:
        raise ConfigError("--provisioning-limit",
                          f"must be at least 1 (got {config.provisioning_limit})")
    if config.backend not in BACKENDS:
        raise ConfigError("--backend", f"must be one of {', '.join(BACKENDS)} "
                          f"(got {config.backend!r})")
    if config.backend == "libvirt" and config.hosts > MAX_VMS:
        raise ConfigError("--hosts", f"at most {MAX_VMS} VMs with --backend libvirt (got "
                          f"{config.hosts}): each needs ~0.7 GB and a TCG boot")
    if config.image_size_mib < 1:
        raise ConfigError("--image-size-mib", f"must be at least 1 (got {config.image_size_mib})")
    return config
