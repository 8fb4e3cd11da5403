"""virtualbmc's daemon for the lab, with two fixes to stock vbmcd so it behaves as a server's
BMC does towards our IPMI driver (pyghmi):

- cipher suites: pyghmi 1.6.19's server (which vbmcd uses) accepts a client's cipher suite 17
  proposal but answers with SHA1; a pyghmi client then fails ("pack expected 32 items"). The
  server refuses non-SHA1 proposals here, so clients fall back to suite 3, as in our IPMI
  emulator (simulators/ipmi/emulator.py);
- reset: stock vbmc resets a running domain warm (libvirt's reset keeps the boot order QEMU
  was started with), so a `chassis bootdev disk` followed by `power reset` boots the old device
  again, where a real server boots the one just set. Here reset is cold (destroy, then create
  from the updated definition), as sushy-tools' ForceRestart already is.

vbmcd forks one process per BMC; they inherit both. Run as
`python -m metalcubed.simulators.devenv.libvirtlab.vbmcd --foreground` with VIRTUALBMC_CONFIG
set (bmcs.Vbmc does).
"""

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)
NODE_BUSY = 0xC0


def cold_reset(self: Any) -> int | None:
    """vbmc.VirtualBMC.power_reset, cold: the domain restarts from its current definition."""
    from virtualbmc import utils

    try:
        with utils.libvirt_open(**self._conn_args) as conn:
            domain = utils.get_libvirt_domain(conn, self.domain_name)
            if domain.isActive():
                domain.destroy()
                domain.create()
    except Exception as err:  # as vbmc's own handlers: the client retries a busy BMC
        log.error("resetting domain %s: %s", self.domain_name, err)
        return NODE_BUSY
    return None


def main() -> int:
    from virtualbmc import vbmc
    from virtualbmc.cmd import vbmcd

    from metalcubed.simulators.ipmi import emulator

    emulator.apply_cipher_suite_workaround()
    vbmc.VirtualBMC.power_reset = cold_reset
    result: int = vbmcd.main(sys.argv[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
