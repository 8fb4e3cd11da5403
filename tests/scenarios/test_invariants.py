"""The invariant checks catch what they claim to catch."""

import pytest

from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta
from metalcubed.simulators.fleet.observer import GROUP_LABEL, Observer

S = bmh.ProvisioningState


def _host(state: S, **status: object) -> bmh.BareMetalHost:
    return bmh.BareMetalHost(
        metadata=meta.ObjectMeta(name="h", namespace="ns", labels={GROUP_LABEL: "g"}),
        spec=bmh.BareMetalHostSpec(online=False),
        status=bmh.BareMetalHostStatus(
            provisioning=bmh.ProvisionStatus(state=state), **status  # type: ignore[arg-type]
        ),
    )


def _observer() -> Observer:
    return Observer(now_s=lambda: 0.0, group_sizes={"g": 1}, settle_error_count=3)


def _feed(observer: Observer, *states: S) -> None:
    kind = ports.WatchEventType.ADDED
    for state in states:
        observer.handle(ports.WatchEvent(kind, _host(state)))
        kind = ports.WatchEventType.MODIFIED


def test_a_legal_path_raises_nothing() -> None:
    observer = _observer()
    _feed(observer, S.NONE, S.REGISTERING, S.INSPECTING, S.PREPARING, S.AVAILABLE)
    assert observer.violations.total == 0
    assert observer.all_settled()


@pytest.mark.parametrize(
    "path",
    [
        (S.NONE, S.PROVISIONED),
        (S.NONE, S.REGISTERING, S.AVAILABLE),
        (S.NONE, S.REGISTERING, S.INSPECTING, S.PREPARING, S.AVAILABLE, S.PROVISIONING,
         S.PROVISIONED, S.AVAILABLE),
    ],
    ids=["none->provisioned", "registering->available", "provisioned->available"],
)
def test_an_illegal_transition_is_reported(path: tuple[S, ...]) -> None:
    observer = _observer()
    _feed(observer, *path)
    assert observer.violations.counts["illegal-transition"] == 1


def test_a_host_left_busy_at_the_end_is_lost() -> None:
    observer = _observer()
    _feed(observer, S.NONE, S.REGISTERING, S.INSPECTING)
    observer.check_end(store_hosts=[_host(S.INSPECTING)], node_names=[], double_writes=0)
    assert observer.violations.counts["host-lost"] == 1


def test_an_error_without_a_message_is_not_settled() -> None:
    observer = _observer()
    observer.handle(ports.WatchEvent(ports.WatchEventType.ADDED, _host(
        S.AVAILABLE, operational_status=bmh.OperationalStatus.ERROR,
        error_type=bmh.ErrorType.PROVISIONING, error_count=5,
    )))
    assert not observer.all_settled()


def test_counts_that_disagree_with_the_store_are_reported() -> None:
    observer = _observer()
    _feed(observer, S.NONE, S.REGISTERING, S.INSPECTING, S.PREPARING, S.AVAILABLE)
    observer.check_end(store_hosts=[_host(S.PROVISIONED)], node_names=[], double_writes=0)
    assert observer.violations.counts["counters"] >= 1


def test_a_node_without_its_host_and_a_double_write_are_reported() -> None:
    observer = _observer()
    _feed(observer, S.NONE, S.REGISTERING, S.INSPECTING, S.PREPARING, S.AVAILABLE)
    observer.check_end(store_hosts=[_host(S.AVAILABLE)], node_names=["ns~ghost"], double_writes=1)
    assert observer.violations.counts["host-lost"] == 1
    assert observer.violations.counts["consumed-twice"] == 1
