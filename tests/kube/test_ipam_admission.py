"""IPPool admission on the real kube-apiserver, through the manager's webhook server: two pools
of a namespace may not share a namePrefix (their IPAddress names `<namePrefix>-<ip>` would
collide and the pools requeue forever, upstream IPAM #1437), and a pool may not pre-allocate one
address to two claims (#1440). `kubectl apply` shows the webhook's answer naming the field.

Uses test_webhooks' `served` manager (a real `metalcubed manager --webhook-port` process whose
webhook lists the stored pools through the API server) and installs upstream's IPAM CRDs
(controllers/manifests/crds, as the shipped kustomization does; applying them again is a no-op).
"""

from typing import Any

import pytest
import yaml

from metalcubed.controllers.kube import capm3crds
from tests.kube.test_webhooks import Kubectl, Setup, apply, served  # noqa: F401

pytestmark = pytest.mark.kube
DENIED = 'admission webhook "validation.ippool.ipam.metal3.io" denied the request: '


@pytest.fixture(scope="module")
def ipam_crds(kubectl: Kubectl) -> None:
    crds = [c for c in capm3crds.load(conversion=None)
            if c["spec"]["group"] == capm3crds.IPAM_GROUP]
    assert {c["spec"]["names"]["kind"] for c in crds} == {"IPPool", "IPClaim", "IPAddress"}
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds))
    kubectl("wait", "--for=condition=Established", "--timeout=60s",
            *(f"crd/{c['metadata']['name']}" for c in crds))


def pool(name: str, prefix: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ipam.metal3.io/v1alpha1", "kind": "IPPool",
            "metadata": {"name": name},
            "spec": {"namePrefix": prefix, "pools": [{"subnet": "10.7.0.0/24"}], **spec}}


def test_a_second_pool_with_the_same_name_prefix_is_refused(
    served: Setup, kubectl: Kubectl, ipam_crds: None,  # noqa: F811
) -> None:
    assert apply(kubectl, served.hosts, pool("first", "shared")).returncode == 0
    done = apply(kubectl, served.hosts, pool("second", "shared"))
    assert done.returncode != 0
    assert DENIED + ('spec.namePrefix: Invalid value: "shared": is already used by IPPool '
                     '"first" in this namespace') in done.stderr, done.stderr
    # the first pool may be applied again (it does not conflict with itself), and another
    # prefix is fine
    assert apply(kubectl, served.hosts, pool("first", "shared")).returncode == 0
    assert apply(kubectl, served.hosts, pool("second", "other")).returncode == 0
    # another namespace has its own IPAddress names
    assert apply(kubectl, served.system, pool("elsewhere", "shared")).returncode == 0


def test_duplicate_preallocations_are_refused(
    served: Setup, kubectl: Kubectl, ipam_crds: None,  # noqa: F811
) -> None:
    doc = pool("pre", "pre", preAllocations={"a": "10.7.0.5", "b": "10.7.0.5"})
    done = apply(kubectl, served.hosts, doc)
    assert done.returncode != 0
    assert DENIED + ('spec.preAllocations[b]: Invalid value: "10.7.0.5": IP address is already '
                     'pre-allocated to claim "a"') in done.stderr, done.stderr
