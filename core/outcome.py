"""What a reconcile pass asks of its runtime, and the errors it may raise.

controller-runtime's contract, reduced to one way per intent (STYLE 4): a reconciler returns
`Outcome.done()` (forget the key until something changes) or `Outcome.after(s)` (look again in
s seconds; 0 means "as soon as a worker is free"). A failure is raised, never returned.

Every error class says whether retrying can help, in its `retryable` class attribute, and the
runtimes decide by that alone (`is_retryable`): a retryable error is retried with the workqueue's
per-item exponential backoff (or after its `retry_after_s`); a permanent one is recorded (log,
metric, and the reconciler's own status/Event when it caught it) and the key is forgotten until
the object changes. Permanent: `PermanentError`, `SpecError` (bad user input), `Invalid` (the
store rejected the write: the same write would be rejected again), `IllegalTransition` (a bug).
Retryable: `TransientError` and its kin (`Conflict`, `Gone`, `ProvisionerNotReady`), `NotFound`
(what is missing may appear), and any exception that is not a `MetalcubedError` (as
controller-runtime retries every error).
"""

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one reconcile pass."""

    requeue_after_s: float | None
    """None: done until the next watch event; otherwise the delay before the next pass."""

    @staticmethod
    def done() -> "Outcome":
        return _DONE

    @staticmethod
    def after(seconds: float) -> "Outcome":
        if seconds < 0:
            raise ValueError(f"requeue delay must be >= 0, got {seconds}")
        return Outcome(requeue_after_s=float(seconds))

    @property
    def is_done(self) -> bool:
        return self.requeue_after_s is None


_DONE = Outcome(requeue_after_s=None)


class MetalcubedError(Exception):
    """Root of every error metalcubed raises on purpose."""

    retryable: ClassVar[bool] = True
    """True: the runtime retries the key with backoff. False: the error is recorded and the key
    is not retried until the object changes (a watch event queues it again)."""


def is_retryable(error: BaseException) -> bool:
    """Whether a runtime should retry a reconcile that raised `error` (see the module doc)."""
    if isinstance(error, MetalcubedError):
        return error.retryable
    return True


class TransientError(MetalcubedError):
    """Retry with backoff; `retry_after_s` overrides the workqueue's own delay when set."""

    retryable: ClassVar[bool] = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(MetalcubedError):
    """Record the failure and stop retrying until the object changes."""

    retryable: ClassVar[bool] = False


class SpecError(MetalcubedError):
    """Bad user input, named by its field path; becomes a status condition or a validate line.

    Permanent: the same input fails the same way until the user changes it.
    """

    retryable: ClassVar[bool] = False

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class IllegalTransition(MetalcubedError):
    """A state change the lifecycle table does not allow: always a bug, so never retried."""

    retryable: ClassVar[bool] = False

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"no transition from state {state!r} on event {event!r}")
        self.state = state
        self.event = event


class Conflict(TransientError):
    """HTTP 409: the object changed since it was read (stale resourceVersion) or already exists."""

    def __init__(self, kind: str, key: str, reason: str) -> None:
        super().__init__(f"{kind} {key}: conflict: {reason}")
        self.kind = kind
        self.key = key
        self.reason = reason


class NotFound(MetalcubedError):
    """HTTP 404: the object does not exist. Retryable: what is missing may be created."""

    retryable: ClassVar[bool] = True

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key} not found")
        self.kind = kind
        self.key = key


class Gone(TransientError):
    """HTTP 410: a watch asked to resume from a resourceVersion the store no longer holds."""

    def __init__(self, resource_version: str) -> None:
        super().__init__(f"resourceVersion {resource_version} is too old")
        self.resource_version = resource_version


class Invalid(MetalcubedError):
    """HTTP 422: the store (schema or admission) rejected the object; names the fields.

    Permanent: the same write is rejected again until the object (or the code) changes.
    """

    retryable: ClassVar[bool] = False

    def __init__(self, kind: str, key: str, causes: list[tuple[str, str]]) -> None:
        detail = "; ".join(f"{field}: {msg}" for field, msg in causes)
        super().__init__(f"{kind} {key} is invalid: {detail}")
        self.kind = kind
        self.key = key
        self.causes = causes


class ProvisionerNotReady(TransientError):
    """The provisioner backend is still starting (upstream ErrNotReady): requeue after 30 s."""
