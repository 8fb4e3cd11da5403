"""`metalcubed manager --controllers` on a real API server: the groups it runs depend on the
CRDs the server serves (discovery), a named group without them stops the manager naming them,
and an IPAM-only manager allocates an address through the real API server.

This session's cluster has no Cluster API core (no cluster.x-k8s.io kinds): exactly the case of
a BMO-only install."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client as k8s

from metalcubed.controllers.kube import capi, capm3crds, localcluster, store
from metalcubed.core.api import ipam, meta
from tests.kube import test_e2e_support as e2e

REPO = Path(__file__).resolve().parents[2]


def _ipam_crds(kube_api: k8s.ApiClient) -> None:
    """IPAM's CRDs, and Cluster API's IPAM contract kinds it also serves (IPAddressClaim,
    IPAddress: from the Cluster API build, cached as test_capi_core builds it)."""
    found = capi.find()
    if found is None:
        if os.environ.get("METALCUBED_KUBE_BUILD") == "0":
            pytest.fail(f"Cluster API is not built; build it with:\n  {capi.build_command()}",
                        pytrace=False)
        print("\n[kube] building Cluster API core (first use only)...", file=sys.__stderr__)
        found = capi.build(progress=sys.__stderr__)
    localcluster.install_crds(kube_api, [
        *[c for c in capm3crds.load(conversion=None)
          if c["spec"]["group"] == capm3crds.IPAM_GROUP],
        *[c for c in found.crds() if c["spec"]["group"] == "ipam.cluster.x-k8s.io"]])


def _chosen(log: Path) -> str:
    """The controllers the manager logged it runs."""
    found = re.search(r"manager: controllers: (.*)", log.read_text())
    assert found is not None, log.read_text()
    return found.group(1)


def test_a_named_group_whose_crds_are_not_served_stops_the_manager_naming_them(
    kube_cluster: localcluster.Cluster,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "metalcubed.cli", "manager", "--kubeconfig",
         str(kube_cluster.kubeconfig), "--provisioner", "fixture", "--controllers", "bmo,capm3",
         "--metrics-bind-address", "0", "--health-probe-bind-address", "0"],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert "--controllers capm3: the API server does not serve" in done.stderr
    assert "machines.cluster.x-k8s.io" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_ipam_manager_allocates_and_the_default_leaves_out_what_is_not_served(
    kube_cluster: localcluster.Cluster, kube_api: k8s.ApiClient, kube_store: store.K8sStore,
    kube_namespace: str, tmp_path: Path,
) -> None:
    _ipam_crds(kube_api)
    ns = kube_namespace
    kube_store.create(ipam.IPPool(
        metadata=meta.ObjectMeta(name="pool1", namespace=ns),
        spec=ipam.IPPoolSpec(name_prefix="pool1", gateway="10.0.0.1",
                             pools=(ipam.Pool(subnet="10.0.0.0/29"),))))
    kube_store.create(ipam.IPClaim(
        metadata=meta.ObjectMeta(name="c0", namespace=ns),
        spec=ipam.IPClaimSpec(pool=meta.ObjectReference(name="pool1", namespace=ns))))
    log = tmp_path / "manager.log"
    with e2e.running_manager(kube_cluster.kubeconfig, ns, log, "--controllers", "ipam"):

        def allocated() -> bool:
            status = kube_store.get(ipam.IPClaim, meta.ObjectKey(ns, "c0")).status
            return status is not None and status.address is not None

        e2e.wait_until(allocated, timeout_s=30, what="IPClaim c0 gets an address")
    (address,) = kube_store.list(ipam.IPAddress, namespace=ns)
    assert address.spec.address not in ("10.0.0.0", "10.0.0.1", "10.0.0.7")  # net, gw, bcast
    assert _chosen(log) == "ippool (ipam)"
    # No flag: every group whose CRDs are served; CAPM3's are not (no Cluster API here).
    default_log = tmp_path / "default.log"
    with e2e.running_manager(kube_cluster.kubeconfig, ns, default_log):
        pass
    text = default_log.read_text()
    assert "not running the capm3 controllers" in text and "clusters.cluster.x-k8s.io" in text
    chosen = _chosen(default_log)
    assert "baremetalhost (bmo)" in chosen and "ippool (ipam)" in chosen
    assert "metal3machine" not in chosen
