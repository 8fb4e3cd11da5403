"""Hypothesis strategies for hostile command-line input: manifests and scenarios as YAML text
with hostile values (5,000-digit integers, NaN, infinities, 600-deep nesting, label keys with
spaces, 90-character label values, huge annotations), alias bombs through nested `kind: List`,
other encodings, truncation and junk bytes. Shared by tests/properties/test_cli_*.py."""

import copy
import string
from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st


@dataclass(frozen=True)
class Raw:
    """A YAML fragment put into the text as is (what safe_dump cannot or would not write)."""

    text: str


HOST = {
    "apiVersion": "metal3.io/v1alpha1",
    "kind": "BareMetalHost",
    "metadata": {"name": "worker-0", "namespace": "metal3",
                 "labels": {"app": "worker"}, "annotations": {"note": "x"}},
    "spec": {
        "online": True,
        "bootMACAddress": "52:54:00:00:00:01",
        "bmc": {"address": "redfish+http://192.168.111.1:8000/redfish/v1/Systems/1",
                "credentialsName": "worker-0-bmc"},
        "rootDeviceHints": {"minSizeGigabytes": 10},
        "image": {"url": "http://images/os.qcow2", "checksum": "http://images/os.qcow2.sha256"},
    },
}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "worker-0-bmc"},
          "data": {"username": "YWRtaW4=", "password": "cGFzc3dvcmQ="}}
HARDWARE_DATA = {"apiVersion": "metal3.io/v1alpha1", "kind": "HardwareData",
                 "metadata": {"name": "worker-0", "namespace": "metal3"},
                 "spec": {"hardware": {"cpu": {"count": 4}, "ramMebibytes": 8192}}}

LABELISH = string.ascii_letters + string.digits + "-_./ :@!é"


def deep_list(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


def deep_map(depth: int) -> Raw:
    return Raw("{a: " * depth + "1" + "}" * depth)


hostile_scalars = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.text(max_size=120),
    st.text(alphabet=LABELISH, min_size=60, max_size=400),
    st.booleans(),
    st.none(),
    st.integers(min_value=90, max_value=6000).map(lambda n: Raw("9" * n)),
    st.integers(min_value=90, max_value=6000).map(lambda n: Raw("-" + "1" * n)),
    st.integers(min_value=20, max_value=600).map(deep_list),
    st.integers(min_value=20, max_value=600).map(deep_map),
    st.sampled_from([Raw(".nan"), Raw(".inf"), Raw("-.inf"), Raw("0x" + "f" * 200),
                     Raw("1e999"), Raw("!!binary aGVsbG8="), Raw("2026-01-02T03:04:05Z")]),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(alphabet=LABELISH, max_size=20), inner,
                                            max_size=4)),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


@st.composite
def hostile_document(draw: st.DrawFn, base: dict[str, Any] | None = None) -> Any:
    """A copy of a manifest with a few fields replaced by hostile values."""
    doc = copy.deepcopy(base if base is not None else draw(
        st.sampled_from([HOST, SECRET, HARDWARE_DATA])))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        # (The 256 KiB annotation total is a parametrized case: PyYAML's pure-Python scanner
        # reads such a file in a quarter second, too slow for every example.)
        mutation = draw(st.sampled_from(["replace", "label", "annotation"]))
        if mutation == "replace":
            path = draw(st.sampled_from(_paths(doc)))
            _set(doc, path, draw(hostile_values))
        elif mutation in ("label", "annotation"):
            metadata = doc.setdefault("metadata", {})
            if not isinstance(metadata, dict):
                continue
            where = metadata.setdefault("labels" if mutation == "label" else "annotations", {})
            if isinstance(where, dict):
                key = draw(st.text(alphabet=LABELISH, min_size=0, max_size=300))
                where[key] = draw(st.one_of(st.text(alphabet=LABELISH, max_size=120),
                                            hostile_scalars))
    if draw(st.booleans()):
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            doc = {"apiVersion": "v1", "kind": "List", "items": [doc]}
    return doc


class _Dumper(yaml.SafeDumper):
    pass


def dump(docs: list[Any]) -> str:
    """YAML text of `docs`, with every `Raw` fragment spliced in."""
    fragments: list[str] = []

    def raw(dumper: yaml.SafeDumper, value: Raw) -> yaml.ScalarNode:
        fragments.append(value.text)
        return dumper.represent_str(f"@@RAW{len(fragments) - 1}@@")

    dumper = type("Dumper", (_Dumper,), {})
    dumper.add_representer(Raw, raw)
    text = yaml.dump_all(docs, Dumper=dumper, sort_keys=False, allow_unicode=True, width=10**9)
    for index, fragment in enumerate(fragments):
        text = text.replace(f"'@@RAW{index}@@'", fragment).replace(f"@@RAW{index}@@", fragment)
    return text


def alias_bomb(levels: int, fanout: int, *, item: dict[str, Any] | None = None) -> str:
    """`levels` of `fanout` aliases through nested `kind: List`: fanout**levels objects."""
    leaf = yaml.safe_dump(item or HOST, default_flow_style=True, width=10**9).strip()
    lines = ["apiVersion: v1", "kind: List", "items:", f"- &l0 {leaf}"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * fanout)
        lines.append(f"- &l{level} {{apiVersion: v1, kind: List, items: [{refs}]}}")
    return "\n".join(lines) + "\n"


@st.composite
def hostile_file(draw: st.DrawFn, documents: st.SearchStrategy[Any] | None = None) -> bytes:
    """The bytes of a hostile YAML file."""
    shape = draw(st.sampled_from(["docs", "docs", "docs", "bomb", "latin-1", "truncated",
                                  "junk"]))
    if shape == "bomb":
        small = draw(st.booleans())
        levels = draw(st.integers(min_value=1, max_value=3 if small else 12))
        fanout = draw(st.integers(min_value=2, max_value=4 if small else 10))
        if not small and fanout**levels < 10**7:
            levels = 12
        return alias_bomb(levels, fanout).encode()
    if shape == "junk":
        return draw(st.binary(max_size=2000))
    docs = draw(st.lists(documents if documents is not None else hostile_document(),
                         min_size=1, max_size=3))
    text = dump(docs)
    if shape == "latin-1":
        return (text + "# café\n").encode("latin-1", errors="replace")
    if shape == "truncated":
        cut = draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))
        return text[:cut].encode()
    return text.encode()
