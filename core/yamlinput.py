"""Reading YAML a user handed us (manifests, scenarios) within stated limits.

PyYAML's safe loader is safe from code execution but not from size: aliases share one node, so
a 1 KB file of nested aliases (through a nested `kind: List`) stands for 10^9 objects once
walked; a 500-deep nesting overflows the composer's recursion; a 5,000-digit integer makes
`int()` raise ValueError (Python's 4,300-digit guard) from inside the loader. This loader
refuses each, before the document reaches anyone, with a `LimitExceeded` that is a
`yaml.YAMLError` carrying the line and column:

- `MAX_DEPTH` levels of nesting (kube-apiserver's JSON reader stops at 10,000; no manifest or
  scenario comes near 100);
- `MAX_NODES` nodes per document once aliases and merge keys are expanded (recursive aliases are
  refused outright);
- integers of at most `MAX_INT_DIGITS` digits (Kubernetes integers are 64-bit: 19 digits).

Callers bound the text itself (`MAX_BYTES`) before decoding it. Pure: text in, data out.
"""

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from yaml import composer, nodes

MAX_BYTES = 32 * 1024 * 1024
"""Largest input read (32 MiB; kube-apiserver takes 3 MiB per request)."""
MAX_DEPTH = 100
MAX_NODES = 1_000_000
MAX_INT_DIGITS = 100


class LimitExceeded(composer.ComposerError):
    """The document is beyond one of this module's limits."""


class Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` with the limits above."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: nodes.Node | None, index: Any) -> nodes.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise LimitExceeded(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            node: nodes.Node | None = super().compose_node(parent, index)
            assert node is not None  # PyYAML returns a node for every event it composes
            return node
        finally:
            self._depth -= 1

    def compose_document(self) -> nodes.Node | None:
        node: nodes.Node | None = super().compose_document()
        if node is not None:
            _check_expanded_size(node)
        return node

    def construct_yaml_int(self, node: nodes.ScalarNode) -> int:
        digits = str(node.value).lstrip("+-").replace("_", "")
        if len(digits) > MAX_INT_DIGITS:
            raise LimitExceeded(None, None, f"an integer of {len(digits)} digits (at most "
                                f"{MAX_INT_DIGITS})", node.start_mark)
        value: int = super().construct_yaml_int(node)
        return value


Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)


def _check_expanded_size(root: nodes.Node) -> None:
    """Count the nodes `root` stands for with aliases expanded; shared nodes counted once per
    use, each computed once (so a bomb is measured, not walked)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: nodes.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in open_nodes:
            raise LimitExceeded(None, None, "a recursive alias (a node containing itself)",
                                node.start_mark)
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, nodes.SequenceNode):
            for child in node.value:
                total += size(child)
        elif isinstance(node, nodes.MappingNode):
            for key, value in node.value:
                total += size(key) + size(value)
        open_nodes.discard(id(node))
        if total > MAX_NODES:
            raise LimitExceeded(None, None, f"the document expands to more than {MAX_NODES:,} "
                                "nodes (aliases?)", node.start_mark)
        sizes[id(node)] = total
        return total

    size(root)


def load_all(text: str, *, loader: type[Loader] = Loader) -> Iterator[Any]:
    """Every document of `text`; raises `yaml.YAMLError` (`LimitExceeded` for the limits)."""
    yield from yaml.load_all(text, Loader=loader)


def load(text: str, *, loader: type[Loader] = Loader) -> Any:
    """The single document of `text` (None when empty); raises like `load_all`."""
    return yaml.load(text, Loader=loader)


def decode(data: bytes, source: str) -> str:
    """`data` as UTF-8 text; ValueError naming `source` and the first bad byte otherwise."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"{source}: larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[err.start:err.start + 1].hex()
        raise ValueError(f"{source}: not UTF-8 text (byte 0x{bad} at offset {err.start}); "
                         "save it as UTF-8") from None


def non_finite(data: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """(field path, value) of every NaN or infinite float in loaded data or in a tree of
    dataclasses, mappings and sequences: YAML's `.nan` and `.inf` are numbers no setting of ours
    accepts, and NaN slips past every `<` and `>` check."""
    stack: list[tuple[str, Any, int]] = [(path, data, 0)]
    while stack:
        where, value, depth = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                yield where or "(document)", value
            continue
        if depth > MAX_DEPTH:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            children: list[tuple[str, Any]] = [
                (f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
        elif isinstance(value, Mapping):
            children = [(str(key), item) for key, item in value.items()]
        elif isinstance(value, list | tuple):
            children = [(f"[{index}]", item) for index, item in enumerate(value)]
        else:
            continue
        for name, child in reversed(children):
            joined = f"{where}{name}" if name.startswith("[") or not where else f"{where}.{name}"
            stack.append((joined, child, depth + 1))
