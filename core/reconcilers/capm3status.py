"""A Metal3Machine's status: conditions (kept in place while their status holds) and fields,
written only when they change (lastUpdated moves with them), so a pass over an unchanged world
writes nothing."""

from typing import Literal

from metalcubed.core import ports
from metalcubed.core.api import meta
from metalcubed.core.api.capm3 import v1beta2 as v2

Status = Literal["True", "False", "Unknown"]


def condition(m3m: v2.Metal3Machine, kind: str) -> v2.Condition | None:
    return next((c for c in (m3m.status.conditions if m3m.status else None) or ()
                 if c.type == kind), None)


def write(store: ports.Store, clock: ports.Clock, m3m: v2.Metal3Machine,
          changes: dict[str, tuple[Status, str, str]], **fields: object) -> v2.Metal3Machine:
    """Write the conditions and `fields` (user_data: a Secret name; provisioned: bool;
    addresses; rendered_data/meta_data/network_data: refs) when they change anything; the
    machine as stored afterwards."""
    status = m3m.status or v2.Metal3MachineStatus()
    current = {c.type: c for c in status.conditions or ()}
    now = meta.format_time(clock.now())
    for kind, (value, reason, message) in changes.items():
        old = current.get(kind)
        if old is not None and (old.status, old.reason, old.message) == (value, reason, message):
            continue
        current[kind] = v2.Condition(
            type=kind, status=value, reason=reason, message=message,
            last_transition_time=old.last_transition_time
            if old is not None and old.status == value else now)
    update: dict[str, object] = {
        "conditions": tuple(sorted(current.values(), key=lambda c: c.type))}
    for name, given in fields.items():
        if name == "user_data":
            update[name] = v2.ObjectRef(name=str(given), namespace=m3m.metadata.namespace)
        elif name == "provisioned":
            update["initialization"] = v2.Metal3MachineInitializationStatus(
                provisioned=bool(given))
        elif name == "addresses":
            update[name] = given or None
        else:
            update[name] = given
    new = status.model_copy(update=update)
    if new == status:
        return m3m
    new = new.model_copy(update={"last_updated": now})
    stored = store.get(v2.Metal3Machine, m3m.key)
    return store.update_status(stored.model_copy(update={"status": new}))
