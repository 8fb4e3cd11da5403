"""What every view module of the Redfish emulator shares: the sushy-tools app, the emulator and
host a request is about, and JSON replies.

The sushy-tools app is a module singleton; each request carries its emulator in the WSGI
environ (`ENVIRON_KEY`, set by the emulator's gate), so the views find their hosts there.
"""

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import flask
from sushy_tools import error as fishy  # type: ignore[import-untyped]
from sushy_tools.emulator import main as sushy_main  # type: ignore[import-untyped]

from metalcubed.simulators import hostmodel

if TYPE_CHECKING:
    from metalcubed.simulators.redfish import emulator as emulator_mod

ENVIRON_KEY = "metalcubed.emulator"
APP: flask.Flask = sushy_main.app


def current() -> "emulator_mod.RedfishEmulator":
    """The emulator serving the current request."""
    em: emulator_mod.RedfishEmulator = flask.request.environ[ENVIRON_KEY]
    return em


def host(identity: str) -> hostmodel.HostModel:
    """The host `identity` (uuid) names; a name redirects to the uuid, as sushy-tools does."""
    em = current()
    found = em.hosts_by_uuid.get(identity)
    if found is not None:
        return found
    found = em.hosts_by_name.get(identity)
    if found is not None:
        raise fishy.AliasAccessError(found.uuid)
    raise fishy.NotFound(f"System {identity} was not found")


def lookup(identity: str) -> hostmodel.HostModel:
    """Like `host` but accepting a name as well (for our own views)."""
    em = current()
    found = em.hosts_by_uuid.get(identity) or em.hosts_by_name.get(identity)
    if found is None:
        raise fishy.NotFound(f"System {identity} was not found")
    return found


def reply(doc: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
          ) -> flask.Response:
    return flask.Response(json.dumps(doc), status=status, headers=headers,
                          content_type="application/json")


def body() -> dict[str, Any]:
    """The request's JSON object; BadRequest when it is not one."""
    doc = flask.request.get_json(silent=True)
    if not isinstance(doc, dict):
        raise fishy.BadRequest("the request body must be a JSON object")
    return doc


def add(rule: str, endpoint: str, view: Callable[..., Any], methods: Sequence[str] = ("GET",)
        ) -> None:
    APP.add_url_rule(rule, endpoint, view, methods=list(methods))
