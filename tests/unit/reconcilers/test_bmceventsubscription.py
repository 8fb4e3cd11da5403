"""The BMCEventSubscription controller over the memory store and the fixture provisioner."""

import pytest

from metalcubed.core import outcome
from metalcubed.core.api import bmceventsubscription as bes
from metalcubed.core.api import meta
from metalcubed.core.reconcilers import bmceventsubscription
from tests.unit.reconcilers.conftest import NS, Harness, b64

DESTINATION = "http://events.example/hook"


class Subs:
    def __init__(self, h: Harness) -> None:
        self.h = h
        self.reconciler = bmceventsubscription.BMCEventSubscriptionReconciler(
            store=h.store, provisioner_factory=h.backend, events=h.events)

    def create(self, name: str = "sub-0", host: str = "host-0",
               headers: str | None = None, context: str = "ctx") -> meta.ObjectKey:
        ref = meta.SecretReference(name=headers, namespace=NS) if headers else None
        return self.h.store.create(bes.BMCEventSubscription(
            metadata=meta.ObjectMeta(name=name, namespace=NS),
            spec=bes.BMCEventSubscriptionSpec(host_name=host, destination=DESTINATION,
                                              context=context, http_headers_ref=ref))).key

    def get(self, key: meta.ObjectKey) -> bes.BMCEventSubscription:
        return self.h.store.get(bes.BMCEventSubscription, key)

    def on_bmc(self, host: str = "host-0") -> dict[str, tuple[str, str, dict[str, str]]]:
        return self.h.backend.node(meta.ObjectKey(NS, host)).subscriptions


@pytest.fixture
def subs(harness: Harness) -> Subs:
    harness.add_host()
    return Subs(harness)


def test_a_subscription_is_created_on_the_bmc_with_the_secrets_headers(
    harness: Harness, subs: Subs
) -> None:
    harness.store.create(meta.Secret(metadata=meta.ObjectMeta(name="hdrs", namespace=NS),
                                     data={"X-Auth": b64("s3cret")}))
    key = subs.create(headers="hdrs")
    assert subs.reconciler.reconcile(key).is_done
    sub = subs.get(key)
    assert bes.FINALIZER in sub.metadata.finalizers
    assert sub.status.error == ""
    assert subs.on_bmc() == {sub.status.subscription_id: (DESTINATION, "ctx",
                                                          {"X-Auth": "s3cret"})}
    assert "SubscriptionCreated" in harness.events.reasons()


def test_a_second_pass_creates_nothing_more(subs: Subs) -> None:
    key = subs.create()
    subs.reconciler.reconcile(key)
    subs.reconciler.reconcile(key)
    assert len(subs.on_bmc()) == 1


def test_deleting_removes_it_from_the_bmc_then_the_finalizer(
    harness: Harness, subs: Subs
) -> None:
    key = subs.create()
    subs.reconciler.reconcile(key)
    harness.store.delete(bes.BMCEventSubscription, key)
    assert subs.reconciler.reconcile(key).is_done
    assert subs.on_bmc() == {}
    with pytest.raises(outcome.NotFound):
        subs.get(key)


def test_a_missing_host_is_named_in_status_and_retried_later(subs: Subs) -> None:
    key = subs.create(host="nobody")
    result = subs.reconciler.reconcile(key)
    assert result.requeue_after_s == bmceventsubscription.RETRY_DELAY_S
    assert subs.get(key).status.error == 'baremetal host "nobody" not found'


def test_a_deleted_subscription_of_a_missing_host_is_let_go(
    harness: Harness, subs: Subs
) -> None:
    key = subs.create()
    subs.reconciler.reconcile(key)
    harness.delete_and_drive_away(meta.ObjectKey(NS, "host-0"))
    harness.store.delete(bes.BMCEventSubscription, key)
    subs.reconciler.reconcile(key)
    with pytest.raises(outcome.NotFound):
        subs.get(key)


def test_a_missing_headers_secret_is_an_error_in_status(subs: Subs) -> None:
    key = subs.create(headers="absent")
    with pytest.raises(bmceventsubscription.HeadersError):
        subs.reconciler.reconcile(key)
    assert subs.get(key).status.error == "failed to retrieve HTTP headers secret"
    assert subs.on_bmc() == {}


def test_a_bmc_refusal_is_recorded_and_a_later_success_clears_it(
    harness: Harness, subs: Subs
) -> None:
    harness.backend.fail("add_bmc_event_subscription", message="EventService disabled")
    key = subs.create()
    with pytest.raises(outcome.TransientError):
        subs.reconciler.reconcile(key)
    assert subs.get(key).status.error == "failed to create a subscription: EventService disabled"
    assert subs.reconciler.reconcile(key).is_done
    sub = subs.get(key)
    assert sub.status.error == "" and sub.status.subscription_id in subs.on_bmc()


def test_a_host_change_reaches_the_subscriptions_that_name_it(
    harness: Harness, subs: Subs
) -> None:
    subs.create("a")
    subs.create("b", host="host-1")
    subs.create("c")

    def lookup(index: str, value: str) -> list[meta.ObjectKey]:
        assert index == bmceventsubscription.HOST_INDEX
        return [s.key for s in harness.store.list(bes.BMCEventSubscription)
                if value in bmceventsubscription.host_of(s)]

    host = harness.host(meta.ObjectKey(NS, "host-0"))
    keys = set(bmceventsubscription.subscriptions_of_host(host, lookup))
    assert keys == {meta.ObjectKey(NS, "a"), meta.ObjectKey(NS, "c")}
