"""The manager caches only the Secrets hosts use: those labelled `environment.metal3.io: baremetal`.

Why (issue 14): a cache of every Secret in the cluster puts every service's credentials in the
manager's memory and makes it list them all. Upstream BMO labels each Secret it uses and its
cache watches only labelled ones; so does metalcubed (`wiring.SECRET_LABEL`, the Secret informer's
label selector in controllers/manager.py).

How a Secret gets its label: the first time a reconcile reads a Secret the cache does not hold
(a host's BMC credentials, or its userData / networkData / metaData), `claim` reads that one
Secret by name (a GET: no list, no watch of unlabelled Secrets) and, if it lacks the label, adds
it with an update that carries the resourceVersion it read (a concurrent change is a 409 and the
reconcile retries). The labelled Secret then arrives through the watch like any other and later
reads come from the cache. A Secret nobody references is never read.

Only the label is written; data, other labels and annotations are sent back as read. If the
label cannot be written (RBAC without `update` on secrets, an admission policy), the Secret is
still returned, so the host works; it is then read by name on each pass and its changes do not
trigger a reconcile, which the log says once per Secret.
"""

import logging
import threading
from collections.abc import Callable

from metalcubed.controllers.kube import informer
from metalcubed.core import outcome, ports, wiring
from metalcubed.core.api import meta

log = logging.getLogger(__name__)


def claimer(
    backend: ports.Store, cache: "informer.Informer[meta.Secret]"
) -> Callable[[meta.ObjectKey], meta.Secret]:
    """The Secret cache's miss handler (informer.CachedStore `on_miss`): see the module doc."""
    key_name, value = wiring.SECRET_LABEL
    warned: set[meta.ObjectKey] = set()
    lock = threading.Lock()

    def claim(key: meta.ObjectKey) -> meta.Secret:
        secret = backend.get(meta.Secret, key)  # NotFound: it does not exist
        if secret.metadata.labels.get(key_name) == value:
            return secret  # labelled already; the watch has not brought it yet
        try:
            labelled = backend.update(
                secret.with_meta(labels={**secret.metadata.labels, key_name: value})
            )
        except outcome.Conflict:
            raise  # changed since read: the reconcile is retried and reads it again
        except outcome.MetalcubedError as err:
            with lock:
                first = key not in warned
                warned.add(key)
            if first:
                log.warning("cannot label Secret %s with %s=%s (%s): it is read by name on "
                            "every pass and its changes do not reconcile its hosts",
                            key, key_name, value, err)
            return secret
        log.info("labelled Secret %s with %s=%s: a host uses it", key, key_name, value)
        cache.write_through(labelled)
        return labelled

    return claim
