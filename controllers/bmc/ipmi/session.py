"""Which pyghmi session layer the IPMI driver uses, and the fix it needs.

pyghmi has two client session layers:

- the default (`pyghmi.ipmi.private.session`) runs one process-wide IO thread that reads every
  socket and wakes the waiting callers. When a pyghmi BMC *server* runs in the same process (our
  IPMI emulator in tests and in the lab), client and server threads race on its wakeups and a
  client can wait forever (seen here with pyghmi 1.6.19 within a few hundred commands);
- `simplesession`, where each session owns its socket and waits on it synchronously. But it
  never retransmits: its `awaitresponse` and `wait_for_rsp` select() with a 30 s or no timeout
  and never call the session's own `_timedout`, so one lost UDP datagram (a silent BMC, or a
  server whose receive buffer overflowed under load) hangs the caller forever.

We use `simplesession` with that gap closed: waits are bounded by the session's retransmit
timer (`self.timeout`, 0.5-1 s, growing by 1 s per retry) and call `_timedout()` when it
expires, which resends the request (or restarts the RAKP exchange) and, past `maxtimeout` (3 s
before login, 6 s after), fails the call with "timeout", as the default layer does.
`select()` applies both, once per process.
"""

import select
import threading
from typing import Any

from pyghmi.ipmi import command  # type: ignore[import-untyped]
from pyghmi.ipmi.private import simplesession  # type: ignore[import-untyped]

_lock = threading.Lock()
_done = False


def _wait_for_rsp(self: Any, timeout: float | None = None, callout: bool = True) -> None:
    wait = self.timeout if timeout is None else timeout
    ready = select.select([self.socket], [], [], wait)[0]
    if ready:
        self.process_pktqueue()
    elif timeout is None:
        self._timedout()


def _awaitresponse(self: Any, retry: bool) -> None:
    while retry and self.lastresponse is None and self.logged:
        _wait_for_rsp(self)
        while self.iterwaiters:
            self.iterwaiters.pop()({"success": True})


def select_session_layer() -> None:
    """Make pyghmi's `Command` use the retransmitting simplesession. Idempotent."""
    global _done
    with _lock:
        if _done:
            return
        simplesession.Session.wait_for_rsp = _wait_for_rsp
        simplesession.Session.awaitresponse = _awaitresponse
        command.select_simplesession()
        _done = True
