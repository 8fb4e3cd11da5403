"""Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Several manager replicas may run; only the holder of the Lease reconciles. The algorithm is
client-go's (`tryAcquireOrRenew`):
- read the Lease (create it, holding it, when there is none);
- a Lease held by someone else is respected until `leaseDurationSeconds` have passed since this
  candidate *last saw the record change* (its own monotonic clock, not the holder's renewTime,
  so clock skew between machines does not matter);
- acquiring or renewing is a PUT with the read resourceVersion: of two candidates racing for an
  expired Lease, exactly one write wins (the other gets 409 and keeps waiting);
- the holder renews every `retry_period`; when it has not managed to renew for
  `renew_deadline`, it has lost the lease and must stop at once (the manager exits, as
  controller-runtime does), because another replica may take over after `lease_duration`.
Defaults are controller-runtime's: 15 s lease, 10 s renew deadline, 2 s retry period. On a
graceful stop the holder releases the Lease (empty holder, 1 s duration) so a standby takes over
within one retry period instead of waiting out the lease (BMO sets
LeaderElectionReleaseOnCancel).
"""

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client as k8s

from metalcubed.controllers.kube import metrics

log = logging.getLogger(__name__)

LEASE_API = "/apis/coordination.k8s.io/v1"
DEFAULT_LEASE_NAME = "baremetal-operator"
"""BMO's leader election ID."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseConfig:
    namespace: str
    identity: str
    name: str = DEFAULT_LEASE_NAME
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not self.lease_duration_s > self.renew_deadline_s > self.retry_period_s > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > retry period > 0, got "
                f"{self.lease_duration_s} / {self.renew_deadline_s} / {self.retry_period_s}"
            )


class LeaseError(Exception):
    """A Lease request failed (transport or an unexpected status)."""


def _micro_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for the Lease, then keeps it; see the module docstring."""

    def __init__(
        self,
        api: k8s.ApiClient,
        config: LeaseConfig,
        *,
        runtime_metrics: metrics.RuntimeMetrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._api = api
        self._metrics = runtime_metrics
        self._monotonic = monotonic
        self._now = now
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._leading = threading.Event()
        self._path = f"{LEASE_API}/namespaces/{config.namespace}/leases/{config.name}"
        self._set_status(False)

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def run(
        self,
        stop: threading.Event,
        *,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
    ) -> None:
        """Block until leading (then call `on_started_leading`) and keep the lease until
        `stop` (release it) or until it is lost (call `on_stopped_leading`)."""
        if not self._acquire(stop):
            return
        on_started_leading()
        lost = self._renew(stop)
        self._leading.clear()
        self._set_status(False)
        if lost:
            log.error("leader election lost: lease %s/%s not renewed within %.0fs",
                      self.config.namespace, self.config.name, self.config.renew_deadline_s)
            on_stopped_leading()
        elif self.config.release_on_cancel:
            self.release()

    # --- the loops ---------------------------------------------------------------------------

    def _acquire(self, stop: threading.Event) -> bool:
        log.info("attempting to acquire leader lease %s/%s as %s",
                 self.config.namespace, self.config.name, self.config.identity)
        while not stop.is_set():
            if self._attempt():
                self._leading.set()
                self._set_status(True)
                log.info("successfully acquired lease %s/%s", self.config.namespace,
                         self.config.name)
                return True
            # client-go's JitterUntil(retryPeriod, 1.2)
            stop.wait(self.config.retry_period_s * (1 + random.random() * 1.2))
        return False

    def _renew(self, stop: threading.Event) -> bool:
        """Renew until `stop` (returns False) or until a renewal deadline passes (True)."""
        cfg = self.config
        while not stop.is_set():
            deadline = self._monotonic() + cfg.renew_deadline_s
            renewed = False
            while not stop.is_set() and self._monotonic() < deadline:
                if self._attempt():
                    renewed = True
                    break
                stop.wait(min(cfg.retry_period_s, max(0.0, deadline - self._monotonic())))
            if stop.is_set():
                return False
            if not renewed:
                return True
            stop.wait(cfg.retry_period_s)
        return False

    def _attempt(self) -> bool:
        try:
            return self._try_acquire_or_renew()
        except LeaseError as exc:
            log.warning("lease %s/%s: %s", self.config.namespace, self.config.name, exc)
            return False

    # --- one round (client-go tryAcquireOrRenew) ------------------------------------------

    def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        stamp = _micro_time(self._now())
        lease = self._get()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": {
                    "holderIdentity": cfg.identity,
                    "leaseDurationSeconds": int(cfg.lease_duration_s),
                    "acquireTime": stamp,
                    "renewTime": stamp,
                    "leaseTransitions": 0,
                },
            }
            created = self._write("POST", f"{LEASE_API}/namespaces/{cfg.namespace}/leases", body)
            if created is None:
                return False
            self._observe(created, force=True)
            return True
        self._observe(lease)
        spec = dict(lease.get("spec") or {})
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration_s)
        mine = holder == cfg.identity
        if holder and not mine and self._observed_at + duration > self._monotonic():
            return False
        spec.update(
            holderIdentity=cfg.identity,
            leaseDurationSeconds=int(cfg.lease_duration_s),
            renewTime=stamp,
        )
        if not mine:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease["spec"] = spec
        updated = self._write("PUT", self._path, lease)
        if updated is None:
            return False
        self._observe(updated, force=True)
        return True

    def release(self) -> None:
        """Give the lease up (only if we still hold it); best effort."""
        try:
            lease = self._get()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != (
                self.config.identity
            ):
                return
            spec = dict(lease["spec"])
            stamp = _micro_time(self._now())
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=stamp,
                        acquireTime=stamp)
            lease["spec"] = spec
            if self._write("PUT", self._path, lease) is not None:
                log.info("released lease %s/%s", self.config.namespace, self.config.name)
        except LeaseError as exc:
            log.warning("could not release lease %s/%s: %s", self.config.namespace,
                        self.config.name, exc)

    def _observe(self, lease: dict[str, Any], *, force: bool = False) -> None:
        spec = lease.get("spec") or {}
        record = (
            spec.get("holderIdentity"),
            spec.get("leaseDurationSeconds"),
            spec.get("acquireTime"),
            spec.get("renewTime"),
            spec.get("leaseTransitions"),
        )
        if force or record != self._observed:
            self._observed = record
            self._observed_at = self._monotonic()

    def _set_status(self, leading: bool) -> None:
        if self._metrics is not None:
            self._metrics.leader_status.labels(name=self.config.name).set(1 if leading else 0)

    # --- HTTP ---------------------------------------------------------------------------------

    def _timeout(self) -> float:
        return max(1.0, self.config.renew_deadline_s / 2)

    def _get(self) -> dict[str, Any] | None:
        try:
            return self._request("GET", self._path, None)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise LeaseError(f"GET: HTTP {exc.status} {exc.reason}") from exc

    def _write(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The written Lease, or None when another candidate got there first (409)."""
        try:
            return self._request(method, path, body)
        except k8s.ApiException as exc:
            if exc.status == 409:
                return None
            raise LeaseError(f"{method}: HTTP {exc.status} {exc.reason}: {exc.body}") from exc

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            resp = self._api.call_api(
                path, method,
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=body, auth_settings=["BearerToken"], _preload_content=False,
                _request_timeout=self._timeout(),
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise LeaseError(f"{method}: {exc}") from exc
        try:
            data = json.loads(resp.data or b"{}")
        finally:
            resp.release_conn()
        return data if isinstance(data, dict) else {}
