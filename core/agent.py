"""The Agent port: what the provisioning engine may ask of a host's deploy agent.

When a host boots the deploy ramdisk (from virtual media or over the network), an agent
starts on it, the way Ironic Python Agent (IPA) does. It finds its node by MAC address (the
lookup) and then heartbeats with the URL it listens on; the engine keeps that URL in its node
table (core/provisioning/nodes.py) and talks to the agent through this port: read its status
and the state of its latest command, read the hardware inventory (in-band inspection), and
start commands that run on the host: wipe disk metadata (cleaning), write an image with its
config drive, power off or reboot.

Commands are asynchronous, as IPA's are: `start_*` returns as soon as the agent accepted the
command, and the engine observes `status(...).command` on later calls (DESIGN rule 5). The
agent runs one command at a time and remembers its commands until the host reboots, so the
state of the latest command is the hardware-side record of what has been done in this boot.

Implementations: controllers/agent_client.py (HTTP: IPA's command API, docs/agent.md) and
simulators/agent (in-process, for the fleet model and tests). No wire format crosses this
boundary.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from metalcubed.core import outcome

if TYPE_CHECKING:
    from metalcubed.core.api import baremetalhost as bmh
    from metalcubed.core.api import hardwaredata as hwd


class CommandName(StrEnum):
    """The commands the engine starts; values are Ironic Python Agent's command names."""

    CLEAN_METADATA = "clean.execute_clean_step"
    """The `erase_devices_metadata` clean step: wipe partition tables and filesystem
    signatures (upstream `metadata` cleaning)."""
    WRITE_IMAGE = "standby.prepare_image"
    """Download the image, verify its checksum, write it and the config drive to the root disk."""
    POWER_OFF = "standby.power_off"
    REBOOT = "standby.run_image"
    """Reboot into whatever the boot order says next (IPA's name: the disk's image)."""


class CommandState(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandStatus:
    """The state of one agent command."""

    id: str
    name: CommandName
    state: CommandState
    error: str = ""
    """Why it failed ("" unless FAILED), as the agent words it."""
    image_url: str = ""
    """For WRITE_IMAGE: the image it was asked to write (so the engine can tell whether the
    latest write is the one it wants now)."""
    image_checksum: str = ""
    clean_step: str = ""
    """For CLEAN_METADATA (IPA's execute_clean_step): which step it runs,
    "erase_devices_metadata" (also when the agent does not say), "delete_configuration" or
    "create_configuration" (software RAID)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEndpoint:
    """Where a running agent listens, as its last heartbeat said."""

    node_id: str
    url: str
    """The agent's callback URL (HTTP), or an in-process address."""
    boot_id: str
    """Changes every time the host boots the ramdisk: a new agent."""
    heartbeat_at: datetime
    token: str = field(default="", repr=False)
    """The agent's token (Ironic's agent_secret_token), sent with every command; made outside
    core, never logged; "" for in-process agents."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatus:
    boot_id: str
    version: str
    command: CommandStatus | None
    """The latest command of this boot; None when none was started yet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigDrive:
    """Config-drive contents (cloud-init): texts as the user's Secrets hold them."""

    user_data: str = ""
    network_data: str = ""
    """JSON (OpenStack network_data.json) or YAML text; "" for none."""
    meta_data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageWrite:
    """What `start_write_image` writes."""

    url: str
    checksum: str
    """The checksum itself, or a URL of a checksum file (`<hex>  <file name>` lines)."""
    checksum_type: str = ""
    """md5, sha256 or sha512; "" or "auto" means detect from the checksum's length."""
    disk_format: str = "raw"
    root_device: "bmh.RootDeviceHints | None" = None
    """Which disk to write (None: the agent's first disk)."""
    config_drive: ConfigDrive | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanStep:
    """A manual clean step other than metadata cleaning: software RAID (IPA's `raid` interface
    steps, which read the node's target RAID config)."""

    interface: str
    """"raid" or "deploy"."""
    step: str
    """"delete_configuration", "create_configuration" or "erase_devices_metadata"."""
    target_raid_config: "bmh.RAIDConfig | None" = None
    """spec.raid, for create_configuration."""


class AgentUnavailable(outcome.MetalcubedError):
    """No agent answers at the endpoint (the host rebooted, powered off, or the agent died).

    Not a failure in itself: the engine treats the agent as absent.
    """

    def __init__(self, url: str, operation: str, reason: str) -> None:
        super().__init__(f"deploy agent at {url} unavailable during {operation}: {reason}")
        self.url = url
        self.operation = operation
        self.reason = reason


class AgentError(outcome.MetalcubedError):
    """The agent answered, but refused the request or sent something unusable."""

    def __init__(self, url: str, operation: str, reason: str) -> None:
        super().__init__(f"deploy agent at {url} failed during {operation}: {reason}")
        self.url = url
        self.operation = operation
        self.reason = reason


class Agent(Protocol):
    """The deploy agents' API, addressed by endpoint.

    Every method makes one quick request and returns; none waits for a command to finish.
    Errors: `AgentUnavailable` when nothing answers (connection refused, timeout, unknown agent),
    `AgentError` for a refusal (e.g. a command is already running) or a malformed answer.
    Safe to call from several threads.
    """

    def status(self, endpoint: AgentEndpoint) -> AgentStatus:
        """The agent's boot id and its latest command."""
        ...

    def inventory(self, endpoint: AgentEndpoint) -> "hwd.HardwareDetails":
        """The host's hardware as the agent sees it from inside (in-band inspection)."""
        ...

    def start_clean(self, endpoint: AgentEndpoint) -> CommandStatus:
        """Start metadata cleaning of every disk."""
        ...

    def start_clean_step(self, endpoint: AgentEndpoint, step: CleanStep) -> CommandStatus:
        """Start one manual clean step (software RAID); its status names the step."""
        ...

    def start_write_image(self, endpoint: AgentEndpoint, image: ImageWrite) -> CommandStatus:
        """Start writing `image` (download, checksum check, write, config drive)."""
        ...

    def start_power_off(self, endpoint: AgentEndpoint) -> CommandStatus:
        """Ask the agent to shut the host down (a graceful power off from inside)."""
        ...

    def start_reboot(self, endpoint: AgentEndpoint) -> CommandStatus:
        """Ask the agent to reboot the host (it boots whatever the boot order says next)."""
        ...
