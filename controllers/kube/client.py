"""The manager's API client: the official client's transport, with client-go's QPS/burst limit.

`--kube-api-qps` and `--kube-api-burst` bound how hard a controller may hit the API server
(client-go's `rest.Config.QPS/Burst`, BMO's defaults 20/30). Every request of the controller
(store writes, watches, Events) goes through one `ThrottledApiClient`, whose token bucket is
shared (leader election gets a client of its own, as in controller-runtime): `qps` tokens per
second refill a bucket of `burst` (core's one `ratelimit.TokenBucket`); a request takes one
token and, when none is left, waits for its turn (a reservation, as golang.org/x/time/rate
does, so waiters are served in order). A long-running watch costs one token when it starts.

It also counts requests by method and status code (`rest_client_requests_total`) and the
time spent waiting on the limiter: the figures behind "API requests per host" in the scale
benchmark.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from metalcubed.controllers.kube import metrics, redaction
from metalcubed.core import ratelimit

log = logging.getLogger(__name__)
# The official client logs every response body at DEBUG, Secret lists included (issue 14).
redaction.install()


USER_AGENT = "metalcubed-manager"


class Throttle:
    """The client's QPS/burst limit: core's `ratelimit.TokenBucket` on the monotonic clock,
    behind a lock; `acquire` blocks until the caller's token is due."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """qps <= 0 disables the limit."""
        self.bucket = ratelimit.TokenBucket(qps=qps, burst=max(1, burst))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token; return how long the caller must wait before using it."""
        with self._lock:
            return self.bucket.reserve(self._clock())

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


class ThrottledApiClient(k8s.ApiClient):  # type: ignore[misc]
    """`kubernetes.client.ApiClient` whose every request takes a token and is counted."""

    def __init__(
        self,
        configuration: k8s.Configuration,
        *,
        throttle: Throttle,
        runtime_metrics: metrics.RuntimeMetrics | None = None,
    ) -> None:
        super().__init__(configuration)
        self.throttle = throttle
        self._metrics = runtime_metrics
        self._host = urlsplit(configuration.host).netloc
        self._count_lock = threading.Lock()
        self.requests_by_method: dict[str, int] = {}
        """Requests sent, by HTTP method (a cheap in-process mirror of the counter)."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        wait = self.throttle.acquire()
        started = time.monotonic()
        code = "<error>"
        try:
            response = super().request(method, url, *args, **kwargs)
            code = str(getattr(response, "status", "<error>"))
            return response
        except k8s.ApiException as exc:
            code = str(exc.status)
            raise
        finally:
            with self._count_lock:
                self.requests_by_method[method] = self.requests_by_method.get(method, 0) + 1
            m = self._metrics
            if m is not None:
                m.rest_requests.labels(code=code, method=method, host=self._host).inc()
                m.rest_latency.labels(verb=method).observe(time.monotonic() - started)
                m.rate_limiter_wait.labels(verb=method).observe(wait)


def load_configuration(kubeconfig: str | None) -> k8s.Configuration:
    """controller-runtime's lookup order: --kubeconfig, $KUBECONFIG, in-cluster, ~/.kube/config.

    Raises:
        ValueError: no usable configuration was found (names where it looked).
    """
    cfg = k8s.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path:
            k8s_config.load_kube_config(config_file=path, client_configuration=cfg)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=cfg)
        else:
            k8s_config.load_kube_config(client_configuration=cfg)
    except k8s_config.ConfigException as exc:
        raise ValueError(f"no Kubernetes client configuration: {exc}") from exc
    return cfg


def new_client(
    configuration: k8s.Configuration,
    *,
    qps: float,
    burst: int,
    connections: int,
    runtime_metrics: metrics.RuntimeMetrics | None = None,
) -> ThrottledApiClient:
    """A throttled client whose connection pool holds `connections` keep-alive connections.

    The pool must cover every concurrent request (workers, watches, events, lease): urllib3
    opens extra connections past its size and then throws them away, which would mean one TLS
    handshake per request under load.
    """
    configuration.connection_pool_maxsize = max(connections, 4)
    api = ThrottledApiClient(
        configuration, throttle=Throttle(qps, burst), runtime_metrics=runtime_metrics
    )
    # The API server names the field manager of our writes (managedFields) and the audit
    # log's user agent after this; the client's default is the code generator's name.
    api.user_agent = USER_AGENT
    return api
