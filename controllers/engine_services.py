"""The provisioning engine with the services hosts talk to, as one unit the manager starts.

`metalcubed manager --provisioner engine` provisions real servers. Besides the BMC drivers,
the engine needs two network services that the hosts reach:

- the agent API (Ironic's v1 API as Ironic Python Agent uses it): lookup, heartbeat,
  inspection callback; controllers/lookup.py;
- the boot server: per-host virtual-media deploy ISOs carrying the agent's parameters (API
  URL, agent token) and static files; controllers/bootserver.py.

`EngineServices` composes them with the node table and the core `Engine` (the
ProvisionerFactory the host reconciler uses). `start()` binds the listeners (loopback unless
configured otherwise) and builds the engine; `stop()` closes everything it started.
"""

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from metalcubed.controllers import agent_client, bootserver, lookup
from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import capacity, context, engine

log = logging.getLogger(__name__)

DEFAULT_API_PORT = 6385
"""Ironic's API port: where IPA looks its node up and heartbeats."""
DEFAULT_BOOT_PORT = 6180
"""Metal3's ironic-image httpd port (boot ISOs, images)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineServiceConfig:
    """Settings of the engine and its services (upstream's env vars where they exist)."""

    api_host: str = "127.0.0.1"
    """Address the agent API (Ironic v1) listens on."""
    api_port: int = 0
    """0 picks a free port (tests); production uses DEFAULT_API_PORT."""
    api_external_url: str = ""
    """The URL hosts use to reach the agent API (ipa-api-url); "" means the listen URL."""
    boot_host: str = "127.0.0.1"
    boot_port: int = 0
    boot_external_url: str = ""
    """The URL BMCs use to fetch boot ISOs; "" means the listen URL."""
    static_dir: Path | None = None
    """Files the boot server serves under /files/ (e.g. images); None serves none."""
    deploy_iso_url: str = ""
    """DEPLOY_ISO_URL: a prebuilt IPA ISO. Its per-host parameters go on a second image."""
    deploy_kernel_url: str = ""
    """DEPLOY_KERNEL_URL / DEPLOY_RAMDISK_URL: the boot server builds each host's ISO from
    these with the agent's parameters on its kernel command line."""
    deploy_ramdisk_url: str = ""
    deploy_bootloader_url: str = ""
    """An EFI system partition image (Ironic's [conductor]bootloader, e.g. ironic-image's
    esp.img): the per-host ISOs boot on UEFI from it. "" builds ISOs with no boot image."""
    provisioning_limit: int = 20
    """PROVISIONING_LIMIT."""
    boot_iso_cache: int = 32
    """Per-host deploy ISOs the boot server keeps on disk (each about the ramdisk's size): at
    least the virtual-media hosts booting the ramdisk at once (an ISO evicted while a BMC still
    reads it piecewise is rebuilt with other timestamps)."""
    agent_timeout_s: float = 300.0
    """A heartbeat older than this means the agent is gone (Ironic's heartbeat_timeout)."""
    engine: context.EngineConfig = field(default_factory=context.EngineConfig)
    """Engine timings; its deploy_iso_url and provisioning_limit are set from the above."""


def check(config: EngineServiceConfig) -> None:
    """ValueError naming the setting when the deploy image settings do not fit together."""
    if bool(config.deploy_kernel_url) != bool(config.deploy_ramdisk_url):
        given, missing = (("DEPLOY_KERNEL_URL", "DEPLOY_RAMDISK_URL") if config.deploy_kernel_url
                          else ("DEPLOY_RAMDISK_URL", "DEPLOY_KERNEL_URL"))
        raise ValueError(f"{given} is set but {missing} is not: per-host deploy ISOs need both")
    if config.boot_iso_cache < 1:
        raise ValueError(f"the boot ISO cache must hold at least 1 ISO, not "
                         f"{config.boot_iso_cache}")
    if config.deploy_bootloader_url and not config.deploy_kernel_url:
        raise ValueError("the deploy bootloader (EFI system partition image) is used only with "
                         "DEPLOY_KERNEL_URL and DEPLOY_RAMDISK_URL")
    for name, url in (("DEPLOY_ISO_URL", config.deploy_iso_url),
                      ("DEPLOY_KERNEL_URL", config.deploy_kernel_url),
                      ("DEPLOY_RAMDISK_URL", config.deploy_ramdisk_url),
                      ("the deploy bootloader URL", config.deploy_bootloader_url)):
        if url and not url.startswith(("http://", "https://")):
            raise ValueError(f"{name} must be an http(s) URL, not {url!r}")


class EngineServices:
    """Node table + agent API + boot server + engine. Not restartable after `stop()`."""

    def __init__(
        self,
        *,
        clock: ports.Clock,
        drivers: engine.DriverFor,
        store_hosts: Callable[[], Iterable[bmh.BareMetalHost]] | None,
        config: EngineServiceConfig | None = None,
        busy_hosts: engine.BusyHosts | None = None,
    ) -> None:
        """`store_hosts` lists the BareMetalHosts (for PROVISIONING_LIMIT's count of hosts busy
        on network boot); `busy_hosts` gives that count's hosts directly instead."""
        self.config = config or EngineServiceConfig()
        check(self.config)
        self.clock = clock
        self._drivers = drivers
        self._store_hosts = store_hosts
        self._busy_hosts = busy_hosts
        self.table = lookup.LockedNodeTable(clock=clock,
                                            agent_timeout_s=self.config.agent_timeout_s)
        self.api = lookup.IronicApi(
            self.table, host=self.config.api_host, port=self.config.api_port,
            heartbeat_timeout_s=self.config.agent_timeout_s,
        )
        self.boot = bootserver.BootServer(
            table=self.table, host=self.config.boot_host, port=self.config.boot_port,
            static_dir=self.config.static_dir,
            deploy_iso_url=self.config.deploy_iso_url,
            deploy_kernel_url=self.config.deploy_kernel_url,
            deploy_ramdisk_url=self.config.deploy_ramdisk_url,
            deploy_bootloader_url=self.config.deploy_bootloader_url,
            max_isos=self.config.boot_iso_cache,
        )
        self._engine: engine.Engine | None = None

    @property
    def engine(self) -> engine.Engine:
        if self._engine is None:
            raise RuntimeError("EngineServices is not started")
        return self._engine

    @property
    def lookup_url(self) -> str:
        """The agent API URL hosts use (ipa-api-url)."""
        return self.config.api_external_url.rstrip("/") or self.api.url

    @property
    def boot_url(self) -> str:
        """The boot server URL BMCs use."""
        return self.config.boot_external_url.rstrip("/") or self.boot.url

    def start(self) -> "EngineServices":
        try:
            self.api.start()
            self.boot.api_url = self.lookup_url
            self.boot.start()
            self.boot.external_url = self.boot_url
            hosts = self._store_hosts
            busy: engine.BusyHosts | None = self._busy_hosts
            if hosts is not None:
                busy = lambda: capacity.busy_hosts(list(hosts()))  # noqa: E731
            cfg = dataclasses.replace(
                self.config.engine,
                deploy_iso_url=self.boot.deploy_iso_url_template(),
                provisioning_limit=self.config.provisioning_limit,
            )
            self._engine = engine.Engine(
                drivers=self._drivers, agents=agent_client.HttpAgent(), nodes_port=self.table,
                clock=self.clock, busy_hosts=busy, config=cfg,
            )
        except BaseException:
            self.stop()
            raise
        log.info("engine services: agent API %s, boot server %s", self.lookup_url, self.boot_url)
        return self

    def stop(self) -> None:
        self.boot.stop()
        self.api.stop()

    def __enter__(self) -> "EngineServices":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
