"""In-memory fakes of the small ports, for tests and the fleet model.

`RecordingEventRecorder` keeps every Event a reconciler records so a test can assert on the
reasons and messages (DESIGN rule 6: failures show up as Events, never only in logs). The
memory Store lives in core/memory_store.py and clocks in core/clock.py; both are held to their
contracts like any adapter.
"""

from dataclasses import dataclass
from datetime import datetime

from metalcubed.core import ports
from metalcubed.core.api import meta


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedEvent:
    """One Event as a reconciler recorded it (what `kubectl get events` would show)."""

    kind: str
    key: meta.ObjectKey
    uid: str | None
    type: ports.EventType
    reason: str
    message: str
    at: datetime | None
    """The recorder's clock at the time, None when it has no clock."""


class RecordingEventRecorder:
    """`ports.EventRecorder` that keeps events in `events`, oldest first. Never raises."""

    def __init__(self, clock: ports.Clock | None = None) -> None:
        self._clock = clock
        self.events: list[RecordedEvent] = []

    def record(
        self, obj: meta.Resource, *, type: ports.EventType, reason: str, message: str
    ) -> None:
        self.events.append(
            RecordedEvent(
                kind=obj.KIND,
                key=obj.key,
                uid=obj.metadata.uid,
                type=type,
                reason=reason,
                message=message,
                at=self._clock.now() if self._clock is not None else None,
            )
        )

    def reasons(self, key: meta.ObjectKey | None = None) -> list[str]:
        """The reasons recorded (about `key` only, when given), oldest first."""
        return [e.reason for e in self.events if key is None or e.key == key]

    def warnings(self) -> list[RecordedEvent]:
        return [e for e in self.events if e.type is ports.EventType.WARNING]

    def clear(self) -> None:
        self.events.clear()
