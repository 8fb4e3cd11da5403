"""The DataImage and BMCEventSubscription webhooks on a real API server: `kubectl apply` of an
object upstream's webhook refuses is refused with upstream's words naming the field, and a
BMCEventSubscription's spec cannot be changed after creation (upstream baremetal-operator
02aa5059e, dataimage_validation.go, bmceventsubscription_validation.go and _webhook.go)."""

from typing import Any

import pytest

from tests.kube.test_webhooks import Kubectl, Setup, apply, served  # noqa: F401

pytestmark = pytest.mark.kube


def _denied(kind: str) -> str:
    return f'admission webhook "{kind.lower()}.metal3.io" denied the request: '


def data_image(url: str) -> dict[str, Any]:
    return {"apiVersion": "metal3.io/v1alpha1", "kind": "DataImage",
            "metadata": {"name": "worker-0"}, "spec": {"url": url}}


def subscription(**spec: Any) -> dict[str, Any]:
    body = {"hostName": "worker-0", "destination": "https://events.example/hook/", **spec}
    return {"apiVersion": "metal3.io/v1alpha1", "kind": "BMCEventSubscription",
            "metadata": {"name": "events"}, "spec": body}


INVALID = [
    ("dataimage-scheme", data_image("file:///srv/x.iso"), "spec.url",
     'URL "file:///srv/x.iso" is invalid: invalid scheme in URL, "file" not allowed'),
    ("dataimage-not-a-url", data_image("abc"), "spec.url",
     'URL "abc" is invalid: parse "abc": invalid URI for request'),
    ("subscription-no-path", subscription(destination="https://events.example"),
     "spec.destination", "hostname-only destination must have a trailing slash"),
    ("subscription-no-host", subscription(hostName=""), "spec.hostName",
     "hostName cannot be empty"),
]


@pytest.mark.parametrize(("doc", "field", "words"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_kubectl_apply_of_an_invalid_object_is_refused_naming_the_field(
    served: Setup, kubectl: Kubectl, doc: dict[str, Any], field: str, words: str,  # noqa: F811
) -> None:
    done = apply(kubectl, served.hosts, doc)
    assert done.returncode != 0
    denied = _denied(doc["kind"])
    assert denied in done.stderr, done.stderr
    assert done.stderr.split(denied, 1)[1].startswith(f"{field}: {words}"), done.stderr


def test_a_subscription_cannot_be_changed_only_recreated(
    served: Setup, kubectl: Kubectl,  # noqa: F811
) -> None:
    assert apply(kubectl, served.hosts, subscription()).returncode == 0
    changed = apply(kubectl, served.hosts, subscription(context="rack-7"))
    assert changed.returncode != 0
    assert (_denied("BMCEventSubscription")
            + "spec: subscriptions cannot be updated, please recreate it") in changed.stderr
    assert apply(kubectl, served.hosts, data_image("http://images.example/a.iso")).returncode == 0
