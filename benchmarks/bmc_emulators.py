"""Throughput of our BMC drivers against the emulators, for 1 and 100 emulated hosts.

Redfish: `RedfishPower.power_state` (one GET of the ComputerSystem through sushy, session reused)
against one RedfishEmulator serving N systems. IPMI: `IpmiPower.power_state` (Get Chassis Status
over RMCP+, session reused) against an IpmiEmulator with N BMCs. Sequential (one caller) and
concurrent (8 threads) runs; client and emulator share the process and its cores, so the
figures are conservative. Writes benchmarks/results/bmc_emulators.json.

    python benchmarks/bmc_emulators.py [--seconds 3]
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import threading
import time
from collections.abc import Callable

from metalcubed.controllers.bmc.ipmi import capabilities as ipmi_caps
from metalcubed.controllers.bmc.redfish import capabilities as rf_caps
from metalcubed.controllers.bmc.redfish import client
from metalcubed.core import bmc, ports
from metalcubed.simulators import hostmodel
from metalcubed.simulators.ipmi import emulator as ipmi_emulator
from metalcubed.simulators.redfish import emulator as redfish_emulator

CREDS = ports.Credentials(username="admin", password="password")
OUT = pathlib.Path(__file__).resolve().parent / "results" / "bmc_emulators.json"


def measure(call: Callable[[int], None], hosts: int, seconds: float, threads: int) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(offset: int) -> None:
        mine, i = [], offset
        while time.monotonic() < deadline:
            started = time.perf_counter()
            call(i % hosts)
            mine.append(time.perf_counter() - started)
            i += threads
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "threads": threads,
        "calls": len(latencies),
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def redfish(n: int, seconds: float) -> list[dict]:
    hosts = hostmodel.make_hosts(n)
    started = time.perf_counter()
    with redfish_emulator.RedfishEmulator(hosts) as em:
        start_s = time.perf_counter() - started
        power = rf_caps.RedfishPower(client.Clients())
        accesses = [bmc.BmcAccess.of(em.bmc_address(h), CREDS) for h in hosts]
        power.power_state(accesses[0])
        results = [measure(lambda i: power.power_state(accesses[i]), n, seconds, t)
                   for t in (1, 8)]
        for r in results:
            r["emulator_start_s"] = round(start_s, 4)
        return results


def ipmi(n: int, seconds: float) -> list[dict]:
    hosts = hostmodel.make_hosts(n)
    started = time.perf_counter()
    with ipmi_emulator.IpmiEmulator(hosts) as em:
        start_s = time.perf_counter() - started
        power = ipmi_caps.IpmiPower(ipmi_caps.Sessions())
        accesses = [bmc.BmcAccess.of(em.bmc_address(h), CREDS) for h in hosts]
        login = time.perf_counter()
        for access in accesses:
            power.power_state(access)
        login_s = time.perf_counter() - login
        results = [measure(lambda i: power.power_state(accesses[i]), n, seconds, t)
                   for t in (1, 8)]
        for r in results:
            r["first_call_all_hosts_s"] = round(login_s, 3)
            r["emulator_start_s"] = round(start_s, 4)
        return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    report = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "note": "client and emulator in one process on 127.0.0.1; shared cores",
        "redfish_get_system": {str(n): redfish(n, args.seconds) for n in (1, 100)},
        "ipmi_get_power": {str(n): ipmi(n, args.seconds) for n in (1, 100)},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
