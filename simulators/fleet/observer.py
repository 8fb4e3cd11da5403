"""The fleet model's omniscient observer: what each host went through, and the invariants.

It watches every BareMetalHost write synchronously (no modelled latency: it is the experimenter,
not a controller) and keeps, per host, the current provisioning state and since when, whether
the host has *settled*, and the figures the report needs: time spent per state visit, entries
per state per minute, hosts per state over time (sampled), delayed-host retry gaps.

Settled means nothing more will happen without a new request: the host is gone, or rests in a
stable state (available, provisioned, externally provisioned, unmanaged) with power as asked,
no pending image change, no reboot annotation, not servicing and not held by the workload (a
service request waiting to reboot the host, servicing.py), or is in error with a reason and
has either used up its tries (errorCount >= the scenario's `settle_error_count`) or rests in a
stable state (e.g. available after the provisioning retry limit). Workload conditions and the
end of the run are decided on it.

Invariants checked during the run: every state change is one upstream allows (an oracle written
from bmo.md 2.3, independent of core/fsm.py); at the end: no host lost (every host settled,
errors carry type and message), no host consumed twice (no machine written by two deploys at
once, no provisioner node shared by two hosts, no node left without its host), and the
observer's counts agree with what the store holds.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.simulators.fleet import scenario

S = bmh.ProvisioningState
OS = bmh.OperationalStatus

GROUP_LABEL = "metalcubed.io/group"
"""Label on every simulated BareMetalHost naming its scenario group."""

ERROR = "error"
DELETED = scenario.DELETED

STATE_ORDER: tuple[str, ...] = (
    S.NONE.value,
    S.UNMANAGED.value,
    S.REGISTERING.value,
    S.INSPECTING.value,
    S.PREPARING.value,
    S.AVAILABLE.value,
    S.PROVISIONING.value,
    S.PROVISIONED.value,
    S.EXTERNALLY_PROVISIONED.value,
    S.DEPROVISIONING.value,
    S.POWERING_OFF_BEFORE_DELETE.value,
    S.DELETING.value,
    S.MATCH_PROFILE.value,
    S.READY.value,
    DELETED,
)
"""Every state label, in lifecycle order (plots and tables use it)."""

_STABLE = frozenset({S.AVAILABLE, S.READY, S.PROVISIONED, S.EXTERNALLY_PROVISIONED, S.UNMANAGED})
_BUSY = frozenset({OS.DELAYED, OS.SERVICING})
"""Operational statuses of a host still at work (waiting for a slot, or being serviced)."""
REBOOT = bmh.REBOOT_ANNOTATION_PREFIX
REBOOT_PREFIX = f"{REBOOT}/"

_EXITS: dict[S, frozenset[S]] = {
    S.NONE: frozenset({S.REGISTERING, S.UNMANAGED, S.DELETING}),
    S.UNMANAGED: frozenset({S.REGISTERING, S.DELETING}),
    S.REGISTERING: frozenset(
        {S.INSPECTING, S.PREPARING, S.EXTERNALLY_PROVISIONED, S.DELETING, S.MATCH_PROFILE}
    ),
    S.MATCH_PROFILE: frozenset({S.PREPARING, S.POWERING_OFF_BEFORE_DELETE, S.DELETING}),
    S.INSPECTING: frozenset({S.PREPARING, S.POWERING_OFF_BEFORE_DELETE, S.DELETING}),
    S.PREPARING: frozenset({S.AVAILABLE, S.POWERING_OFF_BEFORE_DELETE, S.DELETING}),
    S.AVAILABLE: frozenset(
        {
            S.PROVISIONING,
            S.INSPECTING,
            S.PREPARING,
            S.EXTERNALLY_PROVISIONED,
            S.POWERING_OFF_BEFORE_DELETE,
            S.DELETING,
        }
    ),
    S.PROVISIONING: frozenset({S.PROVISIONED, S.DEPROVISIONING, S.DELETING}),
    S.PROVISIONED: frozenset({S.DEPROVISIONING, S.DELETING}),
    S.EXTERNALLY_PROVISIONED: frozenset(
        {S.PROVISIONED, S.POWERING_OFF_BEFORE_DELETE, S.DELETING}
    ),
    S.DEPROVISIONING: frozenset({S.AVAILABLE, S.POWERING_OFF_BEFORE_DELETE, S.DELETING}),
    S.POWERING_OFF_BEFORE_DELETE: frozenset({S.DELETING}),
    S.DELETING: frozenset(),
}
_EXITS[S.READY] = _EXITS[S.AVAILABLE]
LEGAL_TRANSITIONS: frozenset[tuple[S, S]] = frozenset(
    (src, dst) for src, dsts in _EXITS.items() for dst in dsts
)
"""Upstream's state changes (bmo.md 2.3 and checkInitiateDelete), as (from, to) pairs."""


@dataclass(slots=True, eq=False)
class HostRecord:
    name: str
    group: str
    state: S = S.NONE
    entered_at: float = 0.0
    label: str | None = None
    """The settled label (a state value, `error` or `deleted`), None while busy."""
    delayed: bool = False
    error_type: str = ""
    node_id: str = ""


@dataclass(slots=True)
class Violations:
    """Invariant violations: a count per invariant and the first messages."""

    counts: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)
    keep: int = 50

    def add(self, invariant: str, message: str) -> None:
        self.counts[invariant] += 1
        if len(self.messages) < self.keep:
            self.messages.append(f"{invariant}: {message}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Observer:
    """Watches BareMetalHosts; see the module docstring."""

    def __init__(
        self,
        *,
        now_s: Callable[[], float],
        group_sizes: dict[str, int],
        settle_error_count: int,
    ) -> None:
        self._now_s = now_s
        self._settle_errors = settle_error_count
        self.hosts: dict[meta.ObjectKey, HostRecord] = {}
        self.group_sizes = group_sizes
        self.state_counts: Counter[str] = Counter()
        self.settled: dict[str, Counter[str]] = {group: Counter() for group in group_sizes}
        self.unsettled = 0
        self.enrolled = 0
        self.deleted = 0
        self.durations: dict[str, list[float]] = {}
        self.entries: Counter[tuple[str, int]] = Counter()
        """(state label, simulated minute) -> hosts that entered it then."""
        self.samples: list[tuple[float, tuple[int, ...]]] = []
        self.delayed_entries = 0
        self.delayed_now = 0
        self.peak_delayed = 0
        self.violations = Violations()
        self.on_change: Callable[[], None] = lambda: None
        """Called after any host's settled label changed (workload conditions, end of run)."""
        self.on_relabel: Callable[[meta.ObjectKey], None] = lambda key: None
        """Called with the host whose settled label changed (per-host workload steps)."""
        self.held: set[meta.ObjectKey] = set()
        """Hosts the workload holds unsettled (a change requested, not yet visible on the host:
        servicing.py); `relabel` after changing it."""

    # --- the watch handler ----------------------------------------------------------------------

    def handle(self, event: ports.WatchEvent[bmh.BareMetalHost]) -> None:
        host = event.object
        key = host.key
        now = self._now_s()
        record = self.hosts.get(key)
        if event.type == ports.WatchEventType.DELETED:
            if record is None or record.label == DELETED:
                return
            self._leave(record, now)
            self.state_counts[DELETED] += 1
            self.entries[(DELETED, int(now // 60))] += 1
            self.deleted += 1
            self._relabel(record, DELETED, key)
            return
        if record is None:
            record = HostRecord(
                name=str(key), group=host.metadata.labels.get(GROUP_LABEL, ""), entered_at=now
            )
            self.hosts[key] = record
            self.enrolled += 1
            self.unsettled += 1
            self.state_counts[record.state.value] += 1
            self.entries[(record.state.value, int(now // 60))] += 1
        status = host.status
        state = status.provisioning.state
        if state != record.state:
            if (record.state, state) not in LEGAL_TRANSITIONS:
                self.violations.add(
                    "illegal-transition",
                    f"{record.name}: {record.state.value or '(none)'} -> "
                    f"{state.value or '(none)'}",
                )
            self._leave(record, now)
            record.state = state
            record.entered_at = now
            self.state_counts[state.value] += 1
            self.entries[(state.value, int(now // 60))] += 1
        delayed = status.operational_status == OS.DELAYED
        if delayed != record.delayed:
            record.delayed = delayed
            self.delayed_now += 1 if delayed else -1
            if delayed:
                self.delayed_entries += 1
                self.peak_delayed = max(self.peak_delayed, self.delayed_now)
        record.error_type = status.error_type.value
        record.node_id = status.provisioning.id
        self._relabel(record, self._label(host), key)

    def _leave(self, record: HostRecord, now: float) -> None:
        state = record.state.value
        self.state_counts[state] -= 1
        self.durations.setdefault(state, []).append(now - record.entered_at)

    def relabel(self, host: bmh.BareMetalHost) -> None:
        """Recompute the settled label of `host` (after `held` changed)."""
        record = self.hosts.get(host.key)
        if record is not None:
            self._relabel(record, self._label(host), host.key)

    def _label(self, host: bmh.BareMetalHost) -> str | None:
        status = host.status
        state = status.provisioning.state
        if status.operational_status == OS.ERROR:
            if not status.error_type or not status.error_message:
                return None
            if status.error_count >= self._settle_errors or state in _STABLE:
                return ERROR
            return None
        if host.metadata.deletion_timestamp is not None or state not in _STABLE:
            return None
        if status.operational_status in _BUSY:
            return None
        annotations = host.metadata.annotations
        if annotations and (REBOOT in annotations or any(
                name.startswith(REBOOT_PREFIX) for name in annotations)):
            return None
        if self.held and host.key in self.held:
            return None
        spec = host.spec
        if state != S.UNMANAGED and spec.online != status.powered_on:
            return None
        wanted = spec.image.url if spec.image is not None else ""
        provisioned = status.provisioning.image.url
        if state in (S.AVAILABLE, S.READY) and spec.online and wanted and wanted != provisioned:
            return None
        if state == S.PROVISIONED and wanted != provisioned:
            return None
        return state.value

    def _relabel(self, record: HostRecord, label: str | None, key: meta.ObjectKey) -> None:
        old = record.label
        if label == old:
            return
        counts = self.settled[record.group]
        if old is not None:
            counts[old] -= 1
        else:
            self.unsettled -= 1
        if label is not None:
            counts[label] += 1
        else:
            self.unsettled += 1
        record.label = label
        self.on_relabel(key)
        self.on_change()

    # --- queries ------------------------------------------------------------------------------

    def is_delayed(self, key: meta.ObjectKey) -> bool:
        record = self.hosts.get(key)
        return record is not None and record.delayed

    def selection_settled(self, groups: Iterable[str], label: str) -> bool:
        """Every host of `groups` has been enrolled and settled in `label` or in error."""
        for group in groups:
            counts = self.settled[group]
            done = counts[label] + counts[ERROR] + (counts[DELETED] if label != DELETED else 0)
            if done < self.group_sizes[group]:
                return False
        return True

    def all_settled(self) -> bool:
        return self.unsettled == 0 and self.enrolled == sum(self.group_sizes.values())

    def sample(self, now: float) -> None:
        counts = self.state_counts
        self.samples.append((now, tuple(counts[label] for label in STATE_ORDER)))

    # --- end-of-run invariants -----------------------------------------------------------------

    def check_end(
        self,
        *,
        store_hosts: list[bmh.BareMetalHost],
        node_names: Iterable[str],
        double_writes: int,
    ) -> None:
        violations = self.violations
        for record in sorted(self.hosts.values(), key=lambda r: r.name):
            if record.label is None:
                violations.add(
                    "host-lost",
                    f"{record.name}: not settled at the end (state {record.state.value or '(none)'}"
                    f"{', delayed' if record.delayed else ''}"
                    f"{', ' + record.error_type if record.error_type else ''})",
                )
        expected = sum(self.group_sizes.values())
        if self.enrolled != expected:
            violations.add("counters", f"{self.enrolled} hosts enrolled, scenario has {expected}")
        in_store: Counter[str] = Counter()
        owners: dict[str, str] = {}
        for host in store_hosts:
            in_store[host.status.provisioning.state.value] += 1
            node_id = host.status.provisioning.id
            if node_id:
                other = owners.setdefault(node_id, str(host.key))
                if other != str(host.key):
                    violations.add(
                        "consumed-twice", f"{other} and {host.key} share provisioner node {node_id}"
                    )
        for label in STATE_ORDER:
            if label == DELETED:
                continue
            if in_store[label] != self.state_counts[label]:
                violations.add(
                    "counters",
                    f"state {label or '(none)'}: observer counts {self.state_counts[label]}, "
                    f"store holds {in_store[label]}",
                )
        if len(store_hosts) + self.deleted != self.enrolled:
            violations.add(
                "counters",
                f"{len(store_hosts)} hosts in the store + {self.deleted} deleted != "
                f"{self.enrolled} enrolled",
            )
        existing = {f"{h.metadata.namespace}~{h.metadata.name}" for h in store_hosts}
        for node in sorted(node_names):
            if node not in existing:
                violations.add("host-lost", f"provisioner node {node} outlived its host")
        if double_writes:
            violations.add(
                "consumed-twice", f"{double_writes} image writes started on a busy machine"
            )
