"""One reconcile of one host (fixture provisioner, memory store): target <= 50 us median.

Run: python -m pytest benchmarks/test_reconcile_benchmark.py \
     --benchmark-json=benchmarks/results/reconcile.json
The fleet model's speed rests on this figure: 1,000 hosts make tens of thousands of passes.
"""

from typing import Any

from metalcubed.core.api import baremetalhost as bmh
from tests.unit.reconcilers.conftest import IMAGE, Harness

S = bmh.ProvisioningState


def _steady(state: S) -> tuple[Harness, Any]:
    h = Harness()
    h.add_secret()
    key = h.add_host()
    h.drive_to(key, S.AVAILABLE)
    if state == S.PROVISIONED:
        h.edit_spec(key, image=IMAGE)
        h.drive_to(key, S.PROVISIONED)
    for _ in range(3):
        h.step(key)
    return h, key


def test_reconcile_available_host(benchmark: Any) -> None:
    h, key = _steady(S.AVAILABLE)
    result = benchmark(h.reconciler.reconcile, key)
    assert result.requeue_after_s == 60


def test_reconcile_provisioned_host(benchmark: Any) -> None:
    h, key = _steady(S.PROVISIONED)
    result = benchmark(h.reconciler.reconcile, key)
    assert result.requeue_after_s == 60


def test_reconcile_full_enrollment(benchmark: Any) -> None:
    """Every pass from creation to available (about 10 passes, with writes)."""
    counter = iter(range(10**9))

    def enroll() -> None:
        h = Harness()
        h.add_secret()
        key = h.add_host(f"host-{next(counter)}")
        h.drive_to(key, S.AVAILABLE)

    benchmark(enroll)
