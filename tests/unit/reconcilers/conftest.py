"""A harness that drives the BareMetalHost reconciler the way a runtime would, without one.

`step` runs one reconcile and advances a manual clock by the delay the reconciler asked for,
so a test reads as a sequence of passes; `drive` repeats until a predicate holds (like upstream
BMO's `tryReconcile`, bounded).
"""

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.provisioning import fixture
from metalcubed.core.reconcilers import host as host_reconciler
from metalcubed.core.reconcilers.hostwork import HostReconcilerConfig

NS = "metal3"


class ManualClock:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@dataclass
class Recorded:
    reason: str
    message: str
    type: ports.EventType


@dataclass
class Events:
    items: list[Recorded] = field(default_factory=list)

    def record(
        self, obj: meta.Resource, *, type: ports.EventType, reason: str, message: str
    ) -> None:
        self.items.append(Recorded(reason, message, type))

    def reasons(self) -> list[str]:
        return [e.reason for e in self.items]


class CountingMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def inc(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Harness:
    def __init__(self, *, max_provisioning_retries: int = 5) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.backend = fixture.FixtureBackend()
        self.events = Events()
        self.metrics = CountingMetrics()
        self.reconciler = host_reconciler.BareMetalHostReconciler(
            store=self.store,
            provisioner_factory=self.backend,
            clock=self.clock,
            events=self.events,
            rng=random.Random(7),
            config=HostReconcilerConfig(max_provisioning_retries=max_provisioning_retries),
            metrics=self.metrics,
        )

    def add_secret(
        self, name: str = "bmc-creds", username: str = "admin", password: str = "password"
    ) -> None:
        self.store.create(
            meta.Secret(
                metadata=meta.ObjectMeta(name=name, namespace=NS),
                data={"username": b64(username), "password": b64(password)},
            )
        )

    def add_host(
        self,
        name: str = "host-0",
        *,
        annotations: dict[str, str] | None = None,
        **spec: Any,
    ) -> meta.ObjectKey:
        spec.setdefault("online", True)
        spec.setdefault(
            "bmc",
            bmh.BMCDetails(
                address="redfish+http://127.0.0.1:8000/redfish/v1/Systems/1",
                credentials_name="bmc-creds",
            ),
        )
        spec.setdefault("boot_mac_address", "00:5c:52:31:3a:9c")
        host = bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name=name, namespace=NS, annotations=annotations or {}),
            spec=bmh.BareMetalHostSpec(**spec),
        )
        return self.store.create(host).key

    def host(self, key: meta.ObjectKey) -> bmh.BareMetalHost:
        return self.store.get(bmh.BareMetalHost, key)

    def state(self, key: meta.ObjectKey) -> bmh.ProvisioningState:
        return self.host(key).status.provisioning.state

    def step(self, key: meta.ObjectKey) -> outcome.Outcome:
        result = self.reconciler.reconcile(key)
        if result.requeue_after_s:
            self.clock.advance(result.requeue_after_s)
        return result

    def drive(
        self,
        key: meta.ObjectKey,
        until: Callable[[bmh.BareMetalHost], bool],
        *,
        max_passes: int = 60,
    ) -> bmh.BareMetalHost:
        for _ in range(max_passes):
            host = self.host(key)
            if until(host):
                return host
            self.step(key)
        host = self.host(key)
        assert until(host), f"not reached in {max_passes} passes: {host.status!r}"
        return host

    def drive_to(self, key: meta.ObjectKey, state: bmh.ProvisioningState) -> bmh.BareMetalHost:
        return self.drive(key, lambda h: h.status.provisioning.state == state)

    def gone(self, key: meta.ObjectKey) -> bool:
        try:
            self.host(key)
        except outcome.NotFound:
            return True
        return False

    def delete_and_drive_away(self, key: meta.ObjectKey, max_passes: int = 60) -> None:
        self.store.delete(bmh.BareMetalHost, key)
        for _ in range(max_passes):
            if self.gone(key):
                return
            self.step(key)
        assert self.gone(key), f"host not deleted: {self.host(key).status!r}"

    def edit_spec(self, key: meta.ObjectKey, **changes: Any) -> None:
        """Validated like an API write: an unknown field or a wrong type fails the test."""
        host = self.host(key)
        spec = bmh.BareMetalHostSpec.model_validate({**host.spec.__dict__, **changes})
        self.store.update(change.replace(host, {"spec": spec}))

    def set_annotation(self, key: meta.ObjectKey, name: str, value: str | None) -> None:
        host = self.host(key)
        annotations = dict(host.metadata.annotations)
        if value is None:
            annotations.pop(name, None)
        else:
            annotations[name] = value
        self.store.update(host.with_meta(annotations=annotations))


IMAGE = bmh.Image(url="http://images.example/os.qcow2", checksum="0123456789abcdef")


@pytest.fixture
def harness() -> Harness:
    h = Harness()
    h.add_secret()
    return h
