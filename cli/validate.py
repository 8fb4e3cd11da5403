"""`metalcubed validate FILE.yaml ...`: check manifests as the API server and webhook would.

Every document of every file is looked up by apiVersion and kind. Modelled kinds
(BareMetalHost, HardwareData, and every kind registered with a model) are checked against the CRD
schema (our models carry its enums, patterns, bounds and required fields) and upstream's
admission webhook where the kind has one. Core kinds (Secret,
ConfigMap, Namespace) are skipped. Metal3 kinds without a model yet get a notice and do not fail
the run unless `--strict`. Anything else is an unknown kind, which fails.

With `--old STORED.yaml` (e.g. `kubectl get bmh -o yaml > stored.yaml`), each object that has a
stored counterpart there (same apiVersion, kind, name, and namespace when both say one) is checked
as an UPDATE: the stored status is kept (as the API server does for a resource with a status
subresource) and upstream's update rules apply (bmc.address, bootMACAddress,
externallyProvisioned). Objects without a counterpart are checked as a CREATE, with a notice.

Output: one line per problem on stdout, `FILE:DOC: <field path>: <message>` (DOC is the 1-based
index of the document in the file); a summary on stderr.
Exit codes: 0 all valid, 1 at least one problem, 2 a file could not be read or is beyond a limit.

Limits (core/yamlinput.py): a file of at most 32 MiB of UTF-8 text; per document at most 100
levels of nesting, 1,000,000 nodes once YAML aliases are expanded (a 1 KB file of nested aliases
through `kind: List` can stand for 10^9 hosts), integers of at most 100 digits.
"""

import argparse
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from metalcubed.cli import checks
from metalcubed.core import yamlinput
from metalcubed.core.api import ipam, validation
from metalcubed.core.api.capm3 import conversion


class _Loader(yamlinput.Loader):
    """The bounded loader that, like Kubernetes' YAML reader, keeps unquoted timestamps as
    strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yamlinput.Loader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True, slots=True)
class Line:
    """One output line about a document (or a whole file when doc is 0)."""

    file: str
    doc: int
    field: str
    message: str
    fails: bool = True

    def __str__(self) -> str:
        where = f"{self.file}:{self.doc}" if self.doc else self.file
        return _one_line(f"{where}: {self.field}: {self.message}")


def _one_line(text: str) -> str:
    """One output line per problem, whatever keys or messages hold (a key may hold a newline)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass(slots=True)
class Tally:
    files: int = 0
    objects: int = 0
    problems: int = 0
    unreadable: int = 0
    seen: list[tuple[str, int, Any]] = field(default_factory=list)
    """(file, document index, document) of every object read, for ipam.cross_check."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check Metal3 manifests against the CRD schemas and admission rules",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML file ('-' for stdin)")
    parser.add_argument(
        "--old",
        metavar="FILE",
        help="stored objects (YAML, a v1 List is fine): check FILE(s) as updates of them",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on Metal3 kinds that metalcubed does not check yet",
    )
    parser.set_defaults(run=run)


def _documents(text: str) -> Iterator[tuple[int, Any]]:
    """(1-based index, document) pairs; raises yaml.YAMLError at the first broken document."""
    yield from enumerate(yamlinput.load_all(text, loader=_Loader), start=1)


class Stored:
    """The objects of `--old`, looked up by apiVersion, kind, name and namespace."""

    def __init__(self, path: str, objects: list[Mapping[str, Any]]) -> None:
        self.path = path
        self._by_name: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
        for obj in objects:
            self._by_name.setdefault(_identity(obj), []).append(obj)

    def find(self, doc: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str]:
        """(the stored counterpart or None, a problem when the match is ambiguous)."""
        candidates = self._by_name.get(_identity(doc), [])
        namespace = _namespace(doc)
        if namespace:
            candidates = [c for c in candidates if _namespace(c) in ("", namespace)]
        if len(candidates) > 1:
            return None, (
                f"{len(candidates)} stored objects in {self.path} match; "
                "set metadata.namespace to pick one"
            )
        return (candidates[0] if candidates else None), ""


def _metadata(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = doc.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _namespace(doc: Mapping[str, Any]) -> str:
    return str(_metadata(doc).get("namespace") or "")


def _identity(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(doc.get("apiVersion")), str(doc.get("kind")), str(_metadata(doc).get("name")))


def _flatten(doc: Any) -> Iterator[Any]:
    """A document, or the items of a `v1` List (what `kubectl get -o yaml` writes)."""
    if (
        isinstance(doc, Mapping)
        and doc.get("kind") == "List"
        and doc.get("apiVersion") == "v1"
        and isinstance(doc.get("items"), list)
    ):
        for item in doc["items"]:
            yield from _flatten(item)
    else:
        yield doc


def load_stored(path: str) -> Stored:
    """The objects of the `--old` file; BadInput (exit 2) naming the file when it cannot be
    read or a document is not an object."""
    try:
        text = checks.read_input(path)
    except checks.BadInput as err:
        raise checks.BadInput(f"--old {err}") from None
    objects: list[Mapping[str, Any]] = []
    index = 0
    try:
        for index, doc in _documents(text):
            for item in _flatten(doc):
                if item is None:
                    continue
                if not isinstance(item, Mapping):
                    got = type(item).__name__
                    raise checks.BadInput(
                        f"--old {path}:{index}: expected a Kubernetes object, got {got}"
                    )
                objects.append(item)
    except yaml.YAMLError as err:
        raise checks.BadInput(f"--old {path}:{index + 1}: yaml: {_yaml_problem(err)}") from None
    return Stored(path, objects)


def _with_stored_status(doc: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """`doc` as the API server hands it to the webhook on an update of the main resource: the
    status is the stored one (status changes go through the status subresource)."""
    updated = {k: v for k, v in doc.items() if k != "status"}
    if "status" in stored:
        updated["status"] = stored["status"]
    return updated


def _check_object(
    path: str,
    index: int,
    doc: Any,
    *,
    prefix: str,
    strict: bool,
    stored: Stored | None = None,
) -> Iterator[Line]:
    if not isinstance(doc, Mapping):
        got = type(doc).__name__
        yield Line(path, index, prefix + "object", f"expected a Kubernetes object, got {got}")
        return
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if kind == "List" and api_version == "v1" and isinstance(doc.get("items"), list):
        for item_index, item in enumerate(doc["items"]):
            yield from _check_object(
                path,
                index,
                item,
                prefix=f"{prefix}items[{item_index}].",
                strict=strict,
                stored=stored,
            )
        return
    entry = validation.lookup(str(api_version), str(kind))
    if entry is not None and entry.check is validation.Check.NOT_CHECKED:
        yield Line(
            path,
            index,
            prefix + "kind",
            f"not checked: metalcubed has no model for {kind} ({api_version}) yet",
            fails=strict,
        )
        return
    old: Mapping[str, Any] | None = None
    if stored is not None and entry is not None and entry.model is not None:
        old, problem = stored.find(doc)
        if problem:
            yield Line(path, index, prefix + "metadata.name", problem)
            return
        if old is None:
            yield Line(
                path,
                index,
                prefix + "metadata.name",
                f"no stored object in {stored.path}: checked as a create",
                fails=False,
            )
        else:
            doc = _with_stored_status(doc, old)
    errors = validation.validate_object(doc, old=old)
    for error in errors:
        yield Line(path, index, prefix + error.field, error.message)
    if not errors and api_version == conversion.V1BETA1:
        yield from _as_stored(path, index, doc, old, prefix=prefix)


def _as_stored(path: str, index: int, doc: Mapping[str, Any], old: Mapping[str, Any] | None,
               *, prefix: str) -> Iterator[Line]:
    """A v1beta1 CAPM3 object gets upstream's (v1beta2) webhook rules as the API server applies
    them: converted to v1beta2 first; the field paths are v1beta2's."""
    try:
        converted = conversion.convert(doc, conversion.V1BETA2)
        converted_old = conversion.convert(old, conversion.V1BETA2) if old else None
    except ValueError:
        return  # what cannot be converted was reported by the schema check
    for error in validation.validate_object(converted, old=converted_old):
        yield Line(path, index, prefix + error.field, f"{error.message} (checked as "
                                                      f"{conversion.V1BETA2})")


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = " ".join(str(getattr(err, "problem", None) or err).split())
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and context_mark is not None:
        problem += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    return f"{where}{problem}"


def check_file(
    path: str, *, strict: bool, tally: Tally, stored: Stored | None = None
) -> Iterator[Line]:
    """Every line to print about one file."""
    try:
        text = checks.read_input(path)
    except checks.BadInput as err:
        tally.unreadable += 1
        yield Line(path, 0, "file", str(err).removeprefix(f"{path}: "))
        return
    tally.files += 1
    index = 0
    try:
        for index, doc in _documents(text):
            if doc is None:
                continue  # an empty document (e.g. a trailing ---)
            tally.objects += 1
            tally.seen.append((path, index, doc))
            yield from _check_object(path, index, doc, prefix="", strict=strict, stored=stored)
    except yaml.YAMLError as err:
        if isinstance(err, yamlinput.LimitExceeded):
            tally.unreadable += 1  # bad input (exit 2), not a verdict on the manifest
        yield Line(path, index + 1, "yaml", _yaml_problem(err))


def run(args: argparse.Namespace) -> int:
    tally = Tally()
    stored = None
    if args.old is not None:
        if args.old == "-" and "-" in args.files:
            print("metalcubed validate: --old -: standard input can be read once; "
                  "give the stored objects or the manifests as a file", file=sys.stderr)
            return 2
        try:
            stored = load_stored(args.old)
        except checks.BadInput as err:
            print(f"metalcubed validate: {err}", file=sys.stderr)
            return 2
    for path in args.files:
        for line in check_file(path, strict=args.strict, tally=tally, stored=stored):
            print(line, flush=False)
            if line.fails:
                tally.problems += 1
    # Rules across objects (IPPools sharing a namePrefix), over every file given (H8).
    for position, error in ipam.cross_check(
            doc for _, _, doc in tally.seen if isinstance(doc, Mapping)):
        path, index, _ = [s for s in tally.seen if isinstance(s[2], Mapping)][position]
        print(Line(path, index, error.field, error.message), flush=False)
        tally.problems += 1
    sys.stdout.flush()
    print(
        f"checked {tally.objects} object(s) in {tally.files} file(s): "
        f"{tally.problems} problem(s)"
        + (f", {tally.unreadable} unreadable file(s)" if tally.unreadable else ""),
        file=sys.stderr,
    )
    if tally.unreadable:
        return 2
    return 1 if tally.problems else 0
