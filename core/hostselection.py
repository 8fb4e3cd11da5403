"""Which BareMetalHost a Metal3Machine may take: CAPM3's filters and choice, told truthfully.

Pure: hosts, the machine's selector and failure domain and an injected rng in, a choice out.
Upstream (CAPM3 2f6d76b8 baremetal/metal3machine_manager.go `chooseHost`) keeps a host when
- it matches `hostSelector` (matchLabels and matchExpressions);
- it is not being deleted, has no `status.errorMessage`, is not paused, not marked unhealthy
  (`capm3.metal3.io/unhealthy`, deprecated `capi.metal3.io/unhealthy`);
- it has no consumer, and is `available` or `ready` (`spec.online` is not a filter);
and picks uniformly at random. With a failure domain it prefers hosts labelled
`infrastructure.cluster.x-k8s.io/failure-domain=<domain>`, and silently takes any host when none
of those is free (PR #2764). Here the fallback is returned as `Choice.fell_back`, so the
controller says so in a condition instead of nobody noticing.

Node reuse (upstream chooseHost): a host labelled `infrastructure.cluster.x-k8s.io/node-reuse`
is booked for one MachineDeployment (`md-<name>`) or control plane (`cp-<name>`); only a
machine of that one may take it (its consumerRef is then the Cluster, the booking), and such a
machine takes a booked host before any other. A booked host that is still deprovisioning is
waited for (`Choice.wait`), never replaced by a fresh one.
"""

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api.capm3 import v1beta2 as v2

FAILURE_DOMAIN_LABEL = "infrastructure.cluster.x-k8s.io/failure-domain"
NODE_REUSE_LABEL = "infrastructure.cluster.x-k8s.io/node-reuse"
UNHEALTHY_ANNOTATIONS = ("capm3.metal3.io/unhealthy", "capi.metal3.io/unhealthy")
_FREE_STATES = frozenset({bmh.ProvisioningState.AVAILABLE, bmh.ProvisioningState.READY})


class SelectorError(ValueError):
    """A matchExpressions operator CAPM3 does not know (field path in `field`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def matches(selector: v2.HostSelector | None, labels: Mapping[str, str]) -> bool:
    """Label selector semantics of apimachinery for matchLabels and matchExpressions."""
    if selector is None:
        return True
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for i, expr in enumerate(selector.match_expressions or ()):
        op = expr.operator.lower()
        values = set(expr.values or ())
        present = expr.key in labels
        if op in ("in", "=", "=="):
            ok = present and labels[expr.key] in values
        elif op in ("notin", "!="):
            ok = not present or labels[expr.key] not in values
        elif op == "exists":
            ok = present
        elif op in ("doesnotexist", "!"):
            ok = not present
        else:
            raise SelectorError(f"spec.hostSelector.matchExpressions[{i}].operator",
                                f"unknown operator {expr.operator!r}")
        if not ok:
            return False
    return True


def _usable(host: bmh.BareMetalHost) -> bool:
    annotations = host.metadata.annotations
    return (host.metadata.deletion_timestamp is None
            and not host.status.error_message
            and bmh.PAUSED_ANNOTATION not in annotations
            and not any(a in annotations for a in UNHEALTHY_ANNOTATIONS))


def free(host: bmh.BareMetalHost, reuse: str = "") -> bool:
    """Whether a host may be claimed at all (every filter but the selector): unbooked and
    without a consumer, or booked for `reuse` (a machine's node-reuse label value)."""
    if host.status.provisioning.state not in _FREE_STATES:
        return False  # the cheap test first: most hosts, most of the time (watch mappers)
    booking = host.metadata.labels.get(NODE_REUSE_LABEL)
    if booking is not None:
        unclaimed = booking == reuse and bool(reuse) and (
            host.spec.consumer_ref is None or host.spec.consumer_ref.kind == "Cluster")
    else:
        unclaimed = host.spec.consumer_ref is None
    return unclaimed and _usable(host)


@dataclass(frozen=True, slots=True)
class Choice:
    host: bmh.BareMetalHost | None
    fell_back: bool = False
    """A failure domain was asked for and no free host is in it: the host is from elsewhere."""
    wait: str = ""
    """No host yet: a host booked for this machine (named) is not free again yet."""
    why: str = ""
    """No host: why (`why_none`), computed in the same scan."""


def choose(hosts: Iterable[bmh.BareMetalHost], *, selector: v2.HostSelector | None,
           failure_domain: str | None, rng: random.Random, reuse: str = "",
           ) -> Choice:
    """A free host matching `selector`, uniformly at random (`Choice.host` None: no such
    host, `Choice.why` says why). With `reuse`, a host booked for it first (or a Choice to
    wait for one). One pass over `hosts`."""
    matching = sorted((h for h in hosts if matches(selector, h.metadata.labels)),
                      key=lambda h: h.metadata.name)  # sorted: same rng, same choice
    if reuse:
        booked = [h for h in matching
                  if h.metadata.labels.get(NODE_REUSE_LABEL) == reuse and _usable(h)]
        ready = [h for h in booked if free(h, reuse)]
        if ready:
            return Choice(rng.choice(ready))
        if booked:
            return Choice(None, wait=booked[0].metadata.name)
    candidates: Sequence[bmh.BareMetalHost] = [
        h for h in matching if free(h) and NODE_REUSE_LABEL not in h.metadata.labels]
    if not candidates:
        return Choice(None, why=_why(matching, selector))
    if failure_domain:
        in_domain = [h for h in candidates
                     if h.metadata.labels.get(FAILURE_DOMAIN_LABEL) == failure_domain]
        if in_domain:
            return Choice(rng.choice(in_domain), fell_back=False)
        return Choice(rng.choice(candidates), fell_back=True)
    return Choice(rng.choice(candidates), fell_back=False)


def _why(matching: Sequence[bmh.BareMetalHost], selector: v2.HostSelector | None) -> str:
    """Why none of the hosts matching the selector is free, for the condition: counts by
    reason, no names (it stays short at scale)."""
    where = "spec.hostSelector" if selector is not None else "the namespace"
    if not matching:
        return f"no BareMetalHost matches {where}"
    consumed = sum(1 for h in matching if h.spec.consumer_ref is not None)
    booked = sum(1 for h in matching
                 if h.spec.consumer_ref is None and NODE_REUSE_LABEL in h.metadata.labels)
    unusable = sum(1 for h in matching if h.spec.consumer_ref is None and not _usable(h))
    busy = len(matching) - consumed - booked - unusable
    parts = [f"{n} {what}" for n, what in (
        (consumed, "consumed"), (booked, "booked for node reuse"),
        (unusable, "deleting, in error, paused or unhealthy"),
        (busy, "not available or ready")) if n]
    return f"{len(matching)} hosts match {where}, none is free ({', '.join(parts)})"
