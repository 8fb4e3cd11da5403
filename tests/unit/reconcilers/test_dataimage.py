"""The DataImage controller over the memory store and the fixture provisioner."""

import pytest

from metalcubed.core import outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.api import dataimage as di
from metalcubed.core.reconcilers import dataimage
from tests.unit.reconcilers.conftest import IMAGE, NS, Harness

URL = "http://images.example/config.iso"


class Images:
    """The DataImage reconciler beside the harness's host reconciler (same store and clock)."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.reconciler = dataimage.DataImageReconciler(
            store=h.store, provisioner_factory=h.backend, clock=h.clock, events=h.events)

    def create(self, name: str = "host-0", url: str = URL) -> meta.ObjectKey:
        return self.h.store.create(di.DataImage(
            metadata=meta.ObjectMeta(name=name, namespace=NS),
            spec=di.DataImageSpec(url=url))).key

    def get(self, key: meta.ObjectKey) -> di.DataImage:
        return self.h.store.get(di.DataImage, key)

    def step(self, key: meta.ObjectKey) -> outcome.Outcome:
        result = self.reconciler.reconcile(key)
        if result.requeue_after_s:
            self.h.clock.advance(result.requeue_after_s)
        return result

    def settle(self, key: meta.ObjectKey, passes: int = 8) -> None:
        for _ in range(passes):
            try:
                self.get(key)
            except outcome.NotFound:
                return
            if self.step(key).is_done:
                return

    def in_cd(self, key: meta.ObjectKey) -> str:
        return self.h.backend.node(key).data_image_url


def provisioned(h: Harness, **spec: object) -> meta.ObjectKey:
    key = h.add_host(image=spec.pop("image", IMAGE), **spec)
    h.drive_to(key, bmh.ProvisioningState.PROVISIONED)
    return key


@pytest.fixture
def images(harness: Harness) -> Images:
    return Images(harness)


def test_an_image_is_attached_to_a_provisioned_host(harness: Harness, images: Images) -> None:
    host = provisioned(harness)
    key = images.create()
    images.settle(key)
    image = images.get(key)
    assert images.in_cd(host) == URL
    assert image.status.attached_image.url == URL
    assert image.status.error == di.NO_ERROR
    assert image.status.last_reconciled is not None
    assert di.FINALIZER in image.metadata.finalizers
    (owner,) = image.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("BareMetalHost", "host-0",
                                                   harness.host(host).metadata.uid)
    assert "DataImageAttached" in harness.events.reasons()


def test_nothing_is_attached_before_the_host_is_provisioned(
    harness: Harness, images: Images
) -> None:
    host = harness.add_host()  # no image: it stops in available
    harness.drive_to(host, bmh.ProvisioningState.AVAILABLE)
    key = images.create()
    images.settle(key)
    assert images.in_cd(host) == ""
    assert images.get(key).status.attached_image.url == ""
    harness.edit_spec(host, image=IMAGE)
    harness.drive_to(host, bmh.ProvisioningState.PROVISIONED)
    images.settle(key)
    assert images.in_cd(host) == URL


def test_deleting_the_image_ejects_it_then_lets_it_go(harness: Harness, images: Images) -> None:
    host = provisioned(harness)
    key = images.create()
    images.settle(key)
    harness.store.delete(di.DataImage, key)
    assert images.get(key).metadata.deletion_timestamp is not None  # held by the finalizer
    images.settle(key)
    assert images.in_cd(host) == ""
    with pytest.raises(outcome.NotFound):
        images.get(key)


def test_a_new_url_replaces_the_attached_one(harness: Harness, images: Images) -> None:
    host = provisioned(harness)
    key = images.create()
    images.settle(key)
    image = images.get(key)
    harness.store.update(change.replace(image, {"spec": di.DataImageSpec(url=URL + "?v=2")}))
    images.step(key)  # ejects the old one
    assert images.in_cd(host) == ""
    images.settle(key)
    assert images.in_cd(host) == URL + "?v=2"
    assert images.get(key).status.attached_image.url == URL + "?v=2"


def test_an_image_ejected_behind_our_back_is_attached_again(
    harness: Harness, images: Images
) -> None:
    host = provisioned(harness)
    key = images.create()
    images.settle(key)
    harness.backend.node(host).data_image_url = ""
    images.settle(key)
    assert images.in_cd(host) == URL


def test_a_bmc_error_is_counted_in_status_and_cleared_by_a_success(
    harness: Harness, images: Images
) -> None:
    provisioned(harness)
    key = images.create()
    harness.backend.fail("attach_data_image", message="virtual media busy", times=2)
    images.step(key)  # owner
    images.step(key)  # finalizer
    first = images.step(key)
    status = images.get(key).status
    assert status.error.count == 1 and "virtual media busy" in status.error.message
    assert first.requeue_after_s is not None
    assert first.requeue_after_s >= dataimage.UPDATE_DELAY_S
    images.step(key)
    assert images.get(key).status.error.count == 2
    images.settle(key)
    status = images.get(key).status
    assert status.error == di.NO_ERROR and status.attached_image.url == URL


def test_an_image_whose_host_is_gone_loses_its_finalizer(harness: Harness,
                                                         images: Images) -> None:
    host = provisioned(harness)
    key = images.create()
    images.settle(key)
    harness.store.delete(di.DataImage, key)
    harness.delete_and_drive_away(host)
    images.settle(key)
    with pytest.raises(outcome.NotFound):
        images.get(key)


def test_a_detached_host_lets_a_deleted_image_go_without_touching_the_bmc(
    harness: Harness, images: Images
) -> None:
    host = provisioned(harness)
    key = images.create()
    images.settle(key)
    harness.set_annotation(host, bmh.DETACHED_ANNOTATION, "")
    calls = dict(harness.backend.node(host).calls)
    assert images.step(key).requeue_after_s == dataimage.UNMANAGED_RETRY_DELAY_S
    harness.store.delete(di.DataImage, key)
    images.settle(key)
    with pytest.raises(outcome.NotFound):
        images.get(key)
    assert harness.backend.node(host).calls == calls


def test_a_paused_host_is_left_alone(harness: Harness, images: Images) -> None:
    host = provisioned(harness)
    harness.set_annotation(host, bmh.PAUSED_ANNOTATION, "")
    key = images.create()
    assert images.step(key).is_done
    assert images.get(key).metadata.finalizers == ()
    assert images.in_cd(host) == ""


def test_a_live_iso_host_refuses_a_data_image(harness: Harness, images: Images) -> None:
    live = bmh.Image(url="http://images.example/live.iso", format=bmh.ImageFormat.LIVE_ISO)
    host = provisioned(harness, image=live)
    key = images.create()
    images.settle(key, passes=3)
    status = images.get(key).status
    assert status.error.count == 1 and "live-iso" in status.error.message
    assert images.in_cd(host) == ""
