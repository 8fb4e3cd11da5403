"""A workload cluster's Node as CAPM3 sees it: found by its host's uid, given its providerID,
labels synced from the host.

Upstream (CAPM3 2f6d76b8 baremetal/metal3machine_manager.go SetProviderIDFromNodeLabel and
SetNodeProviderIDByHostname; controllers/metal3labelsync_controller.go):

- the Node of a host carries the label `metal3.io/uuid=<host metadata.uid>` (the bootstrap data
  sets it through kubelet `--node-labels`); several Nodes with one uid is an error. Without such
  a Node, the Node whose `kubernetes.io/hostname` label is one of the machine's Hostname
  addresses (exactly one) is the host's;
- its `spec.providerID` is set to `metal3://<ns>/<host>/<m3m>` when empty, accepted when equal;
  any other value is an error naming both (upstream: "unsupported providerID format");
- label sync: the Metal3Cluster annotation `metal3.io/metal3-label-sync-prefixes` lists label
  prefixes (comma-separated DNS-1123 subdomains). A host label whose prefix (the part before
  `/`) is one of them is copied to the Node; a Node label with such a prefix that the host does
  not have (or has with another value) is removed. Labels without a prefix, or with another
  prefix, are never touched.

The workload cluster is reached through `node_store` (a Store; the same API server in the lab).
"""

import re
from collections.abc import Iterable, Mapping

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import node
from metalcubed.core.api.capm3 import v1beta2 as v2

PREFIX_ANNOTATION = "metal3.io/metal3-label-sync-prefixes"
HOSTNAME_LABEL = "kubernetes.io/hostname"
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class NodeError(outcome.PermanentError):
    """The workload cluster's Nodes contradict the host (two Nodes for one host, a foreign
    providerID): a person has to look. Names the Nodes."""


def find(node_store: ports.Store, host: bmh.BareMetalHost,
         hostnames: Iterable[str] = ()) -> node.Node | None:
    """The host's Node: by the uid label, else by a Hostname address; None: not there yet."""
    uid = host.metadata.uid or ""
    if uid:
        found = node_store.list(node.Node, label_selector=f"{node.UUID_LABEL}={uid}")
        if len(found) > 1:
            names = ", ".join(sorted(n.metadata.name for n in found))
            raise NodeError(f"Nodes {names} all carry {node.UUID_LABEL}={uid} (host "
                            f"{host.metadata.namespace}/{host.metadata.name})")
        if found:
            return found[0]
    by_name = [n for name in dict.fromkeys(hostnames)
               for n in node_store.list(node.Node, label_selector=f"{HOSTNAME_LABEL}={name}")]
    return by_name[0] if len(by_name) == 1 else None


def with_provider_id(found: node.Node, provider_id: str) -> node.Node:
    """The Node with `provider_id` (the same object when it has it already); NodeError when it
    has another."""
    current = found.spec.provider_id or ""
    if current == provider_id:
        return found
    if current:
        raise NodeError(f"Node {found.metadata.name} has providerID {current!r}, not "
                        f"{provider_id!r}: not this host's Node, or set by someone else")
    return found.model_copy(update={"spec": found.spec.model_copy(
        update={"provider_id": provider_id})})


def prefixes(m3c: v2.Metal3Cluster) -> frozenset[str]:
    """The label prefixes to sync (none without the annotation); ValueError naming the
    annotation and the bad prefix."""
    raw = m3c.metadata.annotations.get(PREFIX_ANNOTATION, "")
    found = set()
    for item in raw.split(","):
        prefix = item.strip()
        if not prefix:
            continue
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix):
            raise ValueError(f"Metal3Cluster {m3c.metadata.namespace}/{m3c.metadata.name} "
                             f"annotation {PREFIX_ANNOTATION}: {prefix!r} is not a DNS-1123 "
                             "subdomain (e.g. example.com)")
        found.add(prefix)
    return frozenset(found)


def _with_prefix(labels: Mapping[str, str], wanted: frozenset[str]) -> dict[str, str]:
    out = {}
    for key, value in labels.items():
        prefix, slash, name = key.partition("/")
        if slash and prefix and name and prefix in wanted:
            out[key] = value
    return out


def synced_labels(node_labels: Mapping[str, str], host_labels: Mapping[str, str],
                  wanted: frozenset[str]) -> dict[str, str]:
    """The Node's labels after sync (upstream synchronizeLabelSyncSetsOnNode)."""
    from_host = _with_prefix(host_labels, wanted)
    labels = {k: v for k, v in node_labels.items()
              if k not in _with_prefix(node_labels, wanted) or from_host.get(k) == v}
    labels.update(from_host)
    return labels


