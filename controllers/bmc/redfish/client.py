"""Talking to Redfish BMCs through sushy: cached sessions, bounded retries, error translation.

- One `sushy.Sushy` per (endpoint, user, password digest, TLS flag), created on first use and
  reused, so each BMC sees one Redfish session however many calls we make (BMCs cap sessions,
  often at a handful). A client whose credentials were refused is dropped from the cache.
- `server_side_retries=0`: sushy's own retries (10 x 3 s on GETs by default) would hide the
  BMC's answer and stall a worker for half a minute. We retry ourselves, within a per-call
  budget of attempts and seconds, with exponential backoff and jitter: on 503 (honouring
  Retry-After, capped), on 409 (a BMC busy right after a power change), and on other 5xx for
  idempotent operations only. sushy still retries a failed TCP connect a few times; its delay
  is set to `connect_retry_delay_s`.
- One deadline per call (`RetryPolicy.call_timeout_s`): login, every request, every body byte
  and every retry of one `Clients.call` fit in it, so a BMC that drips its answer a byte at a
  time cannot hold a worker. A read timeout is not retried (sushy would resend the request three
  times, tripling the wait and repeating a POST the BMC may have executed), nor is a connect
  timeout; a refused connection is (sushy's own retry, within the deadline).
- Timeouts on connect and read; TLS verification on unless the host disables it.
- Same origin only: every request goes to the BMC's own scheme, host and port. A redirect to
  another origin (another host or port, https to http) or a link to one is refused before
  anything is sent there, so neither the password (a 307 on the session login POST resends the
  body) nor the session token nor basic auth ever leaves the BMC's origin.
- Bodies over `max_body_bytes` are refused while streaming (a hostile BMC cannot make us
  buffer gigabytes); a body nested too deeply for the JSON parser is a bad response.
- Every sushy/requests exception leaves as a `core.bmc.DriverError` carrying the address and
  the operation, chained with `raise ... from`. Credentials are never logged: sushy's debug
  log sanitises them, and our messages are built from the address and operation only.
"""

import hashlib
import logging
import random
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import requests
import sushy  # type: ignore[import-untyped]
import urllib3
from requests import adapters
from sushy import connector as sushy_connector  # type: ignore[import-untyped]
from sushy import exceptions as sushy_exc  # type: ignore[import-untyped]

from metalcubed.controllers.bmc.redfish import parse
from metalcubed.core import bmc

LOG = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 4
    """Tries per call, the first included."""
    budget_s: float = 20.0
    """No retry starts after this many seconds since the call began."""
    base_delay_s: float = 0.25
    max_delay_s: float = 4.0
    max_retry_after_s: float = 10.0
    """A BMC's Retry-After is honoured up to this."""
    call_timeout_s: float = 30.0
    """The deadline of one call, all of it: login, every request and body byte, every retry.
    Each request's connect and read timeouts shrink to what is left of it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    connect_retry_delay_s: float = 0.2
    """Pause between sushy's own connection attempts (it makes 3)."""
    max_body_bytes: int = 16 * 1024 * 1024
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cache_size: int = 4096
    """Cached BMC clients kept (least recently used evicted)."""


class ResponseTooLarge(requests.RequestException):
    """A response body exceeded `max_body_bytes`."""


class OriginRefused(requests.RequestException):
    """A redirect or link pointed away from the BMC's origin; nothing was sent there.

    A RequestException but neither a ConnectionError nor a Timeout, so sushy does not retry it.
    """

    def __init__(self, *, origin: str, target: str, status: int | None) -> None:
        self.origin = origin
        self.target = target
        self.status = status
        what = f"redirect (HTTP {status}) to {target}" if status else f"request to {target}"
        downgrade = (" (a downgrade from https to http)"
                     if origin.startswith("https:") and target.startswith("http:") else "")
        super().__init__(f"{what} refused{downgrade}: only the BMC's origin {origin} is "
                         "trusted, and no credentials or session token were sent elsewhere")


class DeadlineExceeded(requests.RequestException):
    """The call's deadline passed (connect, headers or body); not retried by sushy."""


class NoAnswer(requests.RequestException):
    """The connect or read timeout passed without an answer; not retried by sushy (a timed-out
    request may have acted, and each retry would add a whole timeout)."""


def origin_of(url: str) -> str:
    """`scheme://host:port` of `url`, with the scheme's default port made explicit."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class _GuardedAdapter(adapters.HTTPAdapter):
    """The transport of one BMC client; every request, redirects included, passes here.

    It sends only to the BMC's origin, refuses a redirect elsewhere before following it,
    bounds connect, headers and body by the call's deadline, and reads at most `max_bytes`.
    """

    def __init__(self, *, origin: str, max_bytes: int, read_timeout_s: float,
                 deadline: Callable[[], float | None], monotonic: Callable[[], float]) -> None:
        super().__init__()
        self.origin = origin
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s
        self._deadline = deadline
        self._monotonic = monotonic

    def _remaining(self, deadline: float | None) -> float | None:
        if deadline is None:
            return None
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("the call deadline passed before the BMC finished answering")
        return remaining

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        target = origin_of(request.url or "")
        if target != self.origin:
            raise OriginRefused(origin=self.origin, target=target, status=None)
        deadline = self._deadline()
        remaining = self._remaining(deadline)
        connect_s, read_s = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        if remaining is not None:
            connect_s = remaining if connect_s is None else min(connect_s, remaining)
            read_s = remaining if read_s is None else min(read_s, remaining)
        try:
            response = super().send(request, stream=True, timeout=(connect_s, read_s),
                                    verify=verify, cert=cert, proxies=proxies)
        except requests.exceptions.ConnectTimeout as err:
            # Not resent either: three connect timeouts would triple the configured one.
            self._remaining(deadline)
            raise NoAnswer(f"no connection within the connect timeout of {connect_s:g} s"
                           ) from err
        except requests.exceptions.ReadTimeout as err:
            self._remaining(deadline)
            raise NoAnswer(f"no answer within the read timeout of {read_s:g} s") from err
        if response.is_redirect:
            location = urllib.parse.urljoin(request.url or "", response.headers["location"])
            if origin_of(location) != self.origin:
                response.close()
                raise OriginRefused(origin=self.origin, target=origin_of(location),
                                    status=response.status_code)
        response._content = self._body(response, deadline)
        return response

    def _body(self, response: requests.Response, deadline: float | None) -> bytes:
        """The whole body, read against the deadline and the size cap."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise ResponseTooLarge(f"response of {declared} bytes exceeds {self.max_bytes}")
        raw = response.raw
        chunks, size = [], 0
        try:
            while True:
                remaining = self._remaining(deadline)
                if remaining is not None:
                    # The socket timeout is per read: shrink it so that no read outlives the
                    # deadline (a BMC sending one byte per second never trips a read timeout).
                    conn = getattr(raw, "connection", None)
                    sock = getattr(conn, "sock", None)
                    if sock is not None:
                        sock.settimeout(min(self.read_timeout_s, remaining))
                chunk = raw.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise ResponseTooLarge(f"response exceeds {self.max_bytes} bytes")
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError as err:
            response.close()
            self._remaining(deadline)
            raise NoAnswer(f"the body stalled beyond the read timeout of "
                           f"{self.read_timeout_s:g} s") from err
        except urllib3.exceptions.ProtocolError as err:
            response.close()
            raise requests.exceptions.ChunkedEncodingError(err) from err
        except urllib3.exceptions.DecodeError as err:
            response.close()
            raise requests.exceptions.ContentDecodingError(err) from err
        except requests.RequestException:
            response.close()
            raise
        return b"".join(chunks)


@dataclass(slots=True)
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    conn: sushy.Sushy | None = None


class Clients:
    """The cache of sushy clients and the retry/translation wrapper. Thread-safe."""

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or ClientConfig()
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str, str, bool], _Entry] = OrderedDict()
        self._local = threading.local()
        self.sessions_opened = 0

    # -- the cache ------------------------------------------------------------------------------

    @staticmethod
    def _key(access: bmc.BmcAccess) -> tuple[str, str, str, bool]:
        digest = hashlib.sha256(access.credentials.password.encode()).hexdigest()
        return (access.address.endpoint, access.credentials.username, digest, access.verify_tls)

    def _entry(self, access: bmc.BmcAccess) -> _Entry:
        key = self._key(access)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self.config.cache_size:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
            return entry

    def forget(self, access: bmc.BmcAccess) -> None:
        """Drop the cached client (after an auth failure, or when credentials change)."""
        with self._lock:
            self._entries.pop(self._key(access), None)

    def connection(self, access: bmc.BmcAccess) -> sushy.Sushy:
        """The cached client for `access`, logging in on first use (network I/O)."""
        entry = self._entry(access)
        with entry.lock:
            if entry.conn is None:
                entry.conn = self._connect(access)
            return entry.conn

    def _connect(self, access: bmc.BmcAccess) -> sushy.Sushy:
        cfg = self.config
        connector = sushy_connector.Connector(
            access.address.endpoint,
            verify=access.verify_tls,
            response_callback=self._remember,
            server_side_retries=0,
            server_side_retries_delay=cfg.connect_retry_delay_s,
            default_request_timeout=cfg.read_timeout_s,
            connect_timeout=cfg.connect_timeout_s,
        )
        guarded = _GuardedAdapter(
            origin=origin_of(access.address.endpoint), max_bytes=cfg.max_body_bytes,
            read_timeout_s=cfg.read_timeout_s, deadline=self._current_deadline,
            monotonic=self._monotonic)
        # sushy exposes no hook for transport adapters; its connector keeps a requests.Session.
        # Every scheme goes through the guard, so no request leaves the BMC's origin.
        connector._session.mount("http://", guarded)
        connector._session.mount("https://", guarded)
        conn = sushy.Sushy(
            access.address.endpoint,
            username=access.credentials.username,
            password=access.credentials.password,
            verify=access.verify_tls,
            connector=connector,
            server_side_retries=0,
            read_timeout=cfg.read_timeout_s,
            connect_timeout=cfg.connect_timeout_s,
        )
        self.sessions_opened += 1
        return conn

    def _current_deadline(self) -> float | None:
        deadline: float | None = getattr(self._local, "deadline", None)
        return deadline

    def _remember(self, response: requests.Response) -> None:
        self._local.retry_after = response.headers.get("Retry-After")

    def _retry_after_s(self) -> float | None:
        raw = getattr(self._local, "retry_after", None)
        try:
            return max(0.0, float(raw)) if raw else None
        except ValueError:
            return None  # an HTTP-date: rare on BMCs; fall back to our own backoff

    # -- calls ------------------------------------------------------------------------------------

    def call(
        self,
        access: bmc.BmcAccess,
        operation: str,
        fn: Callable[[sushy.Sushy], T],
        *,
        idempotent: bool = True,
    ) -> T:
        """Run `fn` against the BMC's client, retrying within the budget; translate errors."""
        policy = self.config.retry
        started = self._monotonic()
        self._local.deadline = started + policy.call_timeout_s
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    with self.translated(access, operation):
                        return fn(self.connection(access))
                except bmc.DriverError as err:
                    delay = self._retry_delay(err, attempt, idempotent=idempotent)
                    elapsed = self._monotonic() - started
                    if delay is None or attempt >= policy.attempts \
                            or elapsed + delay > min(policy.budget_s, policy.call_timeout_s):
                        raise
                    LOG.info("retrying %s on %s in %.2fs after: %s", operation,
                             access.display, delay, err.kind)
                    self._sleep(delay)
        finally:
            self._local.deadline = None

    def _retry_delay(self, err: bmc.DriverError, attempt: int, *, idempotent: bool
                     ) -> float | None:
        policy = self.config.retry
        backoff = min(policy.max_delay_s, policy.base_delay_s * 2 ** (attempt - 1))
        backoff *= 0.5 + self._rng.random() / 2
        if isinstance(err, bmc.BmcBusy):
            if err.retry_after_s is not None:
                return min(err.retry_after_s, policy.max_retry_after_s)
            return backoff
        if isinstance(err, bmc.BmcRejected) and err.status == 409:
            return backoff
        if isinstance(err, bmc.BmcServerError) and idempotent:
            return backoff
        return None

    @contextmanager
    def translated(self, access: bmc.BmcAccess, operation: str) -> Iterator[None]:
        """Turn sushy/requests/parse errors raised inside into the DriverError family."""
        address = access.address.address
        try:
            yield
        except bmc.DriverError:
            raise
        except sushy_exc.AccessError as err:
            self.forget(access)
            raise bmc.BmcAuthFailed(address, operation,
                                    f"credentials refused (HTTP {err.status_code})") from err
        except sushy_exc.ServerSideError as err:
            if err.status_code == 503:
                raise bmc.BmcBusy(address, operation, _detail(err),
                                  retry_after_s=self._retry_after_s()) from err
            raise bmc.BmcServerError(address, operation, _detail(err),
                                     status=err.status_code or 500) from err
        except sushy_exc.HTTPError as err:
            raise bmc.BmcRejected(address, operation, _detail(err),
                                  status=err.status_code or 0) from err
        except sushy_exc.ConnectionError as err:
            cause = _root_cause(err)
            if isinstance(cause, (ResponseTooLarge, OriginRefused)):
                raise bmc.BmcBadResponse(address, operation, str(cause)) from err
            if isinstance(cause, requests.exceptions.TooManyRedirects):
                raise bmc.BmcBadResponse(address, operation, "a redirect loop") from err
            if isinstance(cause, DeadlineExceeded):
                raise bmc.BmcUnreachable(
                    address, operation,
                    f"timed out: the call deadline of {self.config.retry.call_timeout_s:g} s "
                    "passed before the BMC finished answering") from err
            if isinstance(cause, NoAnswer):
                raise bmc.BmcUnreachable(address, operation, f"timed out: {cause}") from err
            if isinstance(cause, requests.exceptions.SSLError):
                raise bmc.BmcUnreachable(
                    address, operation, "TLS handshake or certificate verification failed"
                ) from err
            if isinstance(cause, requests.exceptions.Timeout):
                raise bmc.BmcUnreachable(address, operation, "timed out") from err
            raise bmc.BmcUnreachable(address, operation, "connection failed") from err
        except (sushy_exc.MissingAttributeError, sushy_exc.MalformedAttributeError,
                sushy_exc.MissingActionError, sushy_exc.MissingHeaderError,
                sushy_exc.UnknownDefaultError) as err:
            raise bmc.BmcBadResponse(address, operation, str(err)) from err
        except sushy_exc.InvalidParameterValueError as err:
            raise bmc.BmcRejected(address, operation, f"not offered by the BMC: {err}",
                                  status=400) from err
        except parse.PayloadError as err:
            raise bmc.BmcBadResponse(address, operation, str(err)) from err
        except sushy_exc.SushyError as err:
            raise bmc.DriverError(address, operation, str(err)) from err
        except requests.exceptions.JSONDecodeError as err:
            raise bmc.BmcBadResponse(address, operation, "the body is not JSON") from err
        except RecursionError as err:
            raise bmc.BmcBadResponse(
                address, operation, "the body nests deeper than the JSON parser can follow"
            ) from err
        except requests.RequestException as err:
            raise bmc.BmcUnreachable(address, operation, type(err).__name__) from err
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
            # sushy's field parsing on a malformed document (not JSON, wrong nesting).
            raise bmc.BmcBadResponse(
                address, operation, f"unparseable payload ({type(err).__name__})"
            ) from err


def _detail(err: sushy_exc.HTTPError) -> str:
    detail = err.detail if isinstance(err.detail, str) else ""
    return f"HTTP {err.status_code}: {detail[:200]}" if detail else f"HTTP {err.status_code}"


def _root_cause(err: BaseException) -> BaseException | None:
    seen = err.__cause__ or err.__context__
    while seen is not None and (seen.__cause__ or seen.__context__) is not None \
            and not isinstance(seen, requests.RequestException):
        seen = seen.__cause__ or seen.__context__
    return seen
