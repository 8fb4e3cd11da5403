"""Parsing the values of the BareMetalHost annotations the controller acts on (bmo.md section 8).

Pure functions over the annotation map, shared by the reconciler and the admission checks.
A malformed value never raises here: the caller gets a default plus `valid=False` and records an
InvalidAnnotationValue event, as upstream does.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass

from metalcubed.core.api import baremetalhost as bmh


@dataclass(frozen=True, slots=True)
class DetachRequest:
    delete_action: str
    """"delete" (default) or "delay"."""
    force: bool
    valid: bool = True


@dataclass(frozen=True, slots=True)
class RebootRequest:
    hard: bool
    force: bool
    keyed: bool
    """True when a `reboot.metal3.io/<key>` annotation asks: the host stays off until every
    keyed annotation is removed by its owner."""
    valid: bool = True


def _json_object(value: str) -> dict[str, object] | None:
    if value.strip() == "":
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def detach_request(annotations: Mapping[str, str]) -> DetachRequest | None:
    """The detached annotation's request, or None when the annotation is absent."""
    value = annotations.get(bmh.DETACHED_ANNOTATION)
    if value is None:
        return None
    parsed = _json_object(value)
    if parsed is None:
        return DetachRequest(delete_action="delete", force=False, valid=False)
    action = parsed.get("deleteAction", "delete")
    force = parsed.get("force", False)
    ok = action in ("delete", "delay") and isinstance(force, bool)
    return DetachRequest(
        delete_action=action if action in ("delete", "delay") else "delete",
        force=force is True,
        valid=ok,
    )


def reboot_keys(annotations: Mapping[str, str]) -> list[str]:
    """Every reboot annotation present: the bare `reboot.metal3.io` and the keyed ones."""
    prefix = bmh.REBOOT_ANNOTATION_PREFIX
    return [k for k in annotations if k == prefix or k.startswith(prefix + "/")]


def reboot_request(annotations: Mapping[str, str]) -> RebootRequest | None:
    """The combined reboot request (any hard request wins), or None when none is present."""
    keys = reboot_keys(annotations)
    if not keys:
        return None
    hard = force = False
    valid = True
    for key in keys:
        parsed = _json_object(annotations[key])
        if parsed is None:
            valid = False
            continue
        mode = parsed.get("mode", "")
        if mode not in ("", "soft", "hard"):
            valid = False
        hard = hard or mode == "hard"
        force = force or parsed.get("force") is True
    keyed = any(k != bmh.REBOOT_ANNOTATION_PREFIX for k in keys)
    return RebootRequest(hard=hard, force=force, keyed=keyed, valid=valid)


def inspection_requested(annotations: Mapping[str, str]) -> bool:
    """The inspect annotation asks for (re-)inspection: present with a value other than disabled."""
    value = annotations.get(bmh.INSPECT_ANNOTATION)
    return value is not None and value != bmh.INSPECT_DISABLED
