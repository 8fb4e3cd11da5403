"""Secret data never reaches the log, at any level (DESIGN rule 7).

The official client logs every response body it reads at DEBUG (`kubernetes.client.rest`:
"response body: ..."), so `manager --log-level debug` would print each Secret list it receives:
every BMC password in base64, and again in clear in the
`kubectl.kubernetes.io/last-applied-configuration` annotation of a Secret made with
`kubectl apply`. `install()` puts a filter on that logger which rewrites such records before
any handler sees them: a Secret (alone, in a SecretList, or as a watch event's object) keeps
its kind, name, namespace and the names of its keys; its values and its annotations are
replaced by `<redacted>`. A body that does not parse as JSON but mentions a Secret is not
logged at all. Other bodies are left as they are.

Idempotent, and free when DEBUG is off: the logger then never builds the record.
"""

import json
import logging
from typing import Any

LOGGERS = ("kubernetes.client.rest",)
"""Loggers that print API response bodies."""
REDACTED = "<redacted>"


def redact_secrets(doc: Any) -> Any:
    """`doc` with the values of every Secret in it replaced; other content unchanged."""
    if isinstance(doc, list):
        return [redact_secrets(item) for item in doc]
    if not isinstance(doc, dict):
        return doc
    kind = doc.get("kind")
    if kind == "Secret":
        return _redacted_secret(doc)
    if kind == "SecretList" and isinstance(doc.get("items"), list):
        # List items carry no kind of their own.
        return dict(doc, items=[_redacted_secret(item) if isinstance(item, dict) else REDACTED
                                for item in doc["items"]])
    return {key: redact_secrets(value) for key, value in doc.items()}


def _redacted_secret(secret: dict[str, Any]) -> dict[str, Any]:
    out = dict(secret)
    for field in ("data", "stringData"):
        values = out.get(field)
        if isinstance(values, dict):
            out[field] = dict.fromkeys(values, REDACTED)
        elif values is not None:
            out[field] = REDACTED
    metadata = out.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        out["metadata"] = dict(metadata, annotations=dict.fromkeys(metadata["annotations"],
                                                                   REDACTED))
    return out


def redact_body(body: Any) -> Any:
    """A logged response body (bytes or str) with Secret values replaced."""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
    if not isinstance(text, str) or "Secret" not in text:
        return body
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return f"<{len(text)} characters not logged: they mention a Secret>"
    return json.dumps(redact_secrets(doc), separators=(",", ":"))


class SecretFilter(logging.Filter):
    """Rewrites a record's arguments so that no Secret value is formatted into it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(redact_body(arg) for arg in args)
        elif isinstance(args, dict):
            record.args = {key: redact_body(value) for key, value in args.items()}
        return True


_FILTER = SecretFilter()


def install() -> None:
    """Attach the filter to every logger in `LOGGERS` (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
