"""A running `CachedStore` (controllers/kube/informer.py) over any backing Store, for the
store contract: what production reads through, informers started and synced as the manager
starts them, stopped (thread joined) when the context ends."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from metalcubed.controllers.kube import informer
from metalcubed.core import ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import meta

SYNC_TIMEOUT_S = 30.0


@contextmanager
def cached_store(backend: ports.Store, *, namespace: str | None) -> Iterator[ports.Store]:
    """CachedStore caching BareMetalHosts and Secrets (of `namespace`, or all) from `backend`."""
    caches: list[informer.Informer[meta.Resource]] = [
        informer.Informer(backend, bmh.BareMetalHost, namespace=namespace),
        informer.Informer(backend, meta.Secret, namespace=namespace),
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=cache.run, args=(stop,), daemon=True,
                                name=f"contract-{cache.name}") for cache in caches]
    for thread in threads:
        thread.start()
    try:
        for cache in caches:
            if not cache.wait_synced(stop, timeout_s=SYNC_TIMEOUT_S):
                raise AssertionError(f"{cache.name} did not sync within {SYNC_TIMEOUT_S} s")
        yield informer.CachedStore(backend, caches)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=SYNC_TIMEOUT_S)
