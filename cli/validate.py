"""`metalcubed validate FILE.yaml ...`: check manifests as the API server and webhook would.

Every document of every file is looked up by apiVersion and kind. Modelled kinds
(BareMetalHost, HardwareData) are checked against the CRD schema (our models carry its enums,
patterns, bounds and required fields) and upstream's admission webhook. Core kinds (Secret,
ConfigMap, Namespace) are skipped. Metal3 kinds without a model yet get a notice and do not fail
the run unless `--strict`. Anything else is an unknown kind, which fails.

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
from dataclasses import dataclass
from typing import Any

import yaml

from metalcubed.cli import checks
from metalcubed.core import yamlinput
from metalcubed.core.api import validation


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


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check Metal3 manifests against the CRD schemas and admission rules",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML file ('-' for stdin)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on Metal3 kinds that metalcubed does not check yet",
    )
    parser.set_defaults(run=run)


def _documents(text: str) -> Iterator[tuple[int, Any]]:
    """(1-based index, document) pairs; raises yaml.YAMLError at the first broken document."""
    yield from enumerate(yamlinput.load_all(text, loader=_Loader), start=1)


def _check_object(path: str, index: int, doc: Any, *, prefix: str, strict: bool) -> Iterator[Line]:
    if not isinstance(doc, Mapping):
        got = type(doc).__name__
        yield Line(path, index, prefix + "object", f"expected a Kubernetes object, got {got}")
        return
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if kind == "List" and api_version == "v1" and isinstance(doc.get("items"), list):
        for item_index, item in enumerate(doc["items"]):
            yield from _check_object(
                path, index, item, prefix=f"{prefix}items[{item_index}].", strict=strict
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
    for error in validation.validate_object(doc):
        yield Line(path, index, prefix + error.field, error.message)


def check_file(path: str, *, strict: bool, tally: Tally) -> Iterator[Line]:
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
            yield from _check_object(path, index, doc, prefix="", strict=strict)
    except yaml.YAMLError as err:
        if isinstance(err, yamlinput.LimitExceeded):
            tally.unreadable += 1  # bad input (exit 2), not a verdict on the manifest
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context and context_mark is not None:
            problem += (
                f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
            )
        yield Line(path, index + 1, "yaml", f"{where}{problem}")


def run(args: argparse.Namespace) -> int:
    tally = Tally()
    for path in args.files:
        for line in check_file(path, strict=args.strict, tally=tally):
            print(line, flush=False)
            if line.fails:
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
