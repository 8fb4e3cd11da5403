"""The lab process: what `metalcubed devenv up` leaves running in the background.

Run as `python -m metalcubed.simulators.devenv.process --dir DIR` (control.py starts it in a
session of its own, with stdout and stderr going to DIR/lab.log). It reads DIR/config.json,
starts the `Lab`, and serves its control endpoint on 127.0.0.1 (ephemeral port):

- `GET /status`: the lab's services and every host's row (what `devenv status --json` prints);
- `POST /provision`: give every host without an image the lab's OS image;
- `GET /stats`: the BMC shards' counters and the controller's reconcile count.

When everything is up it writes DIR/state.json (its pid, the endpoint, the lab's description,
the BMC processes' pids); if the lab cannot start it writes DIR/failed.json with the reason and
exits 1. SIGTERM or SIGINT stops the lab (BMC processes included) and removes state.json.
"""

import argparse
import json
import logging
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from metalcubed.controllers.kube import runtime
from metalcubed.simulators.agent import _http
from metalcubed.simulators.devenv import config as lab_config
from metalcubed.simulators.devenv import control
from metalcubed.simulators.devenv import lab as lab_module

log = logging.getLogger("metalcubed.devenv")

class ControlEndpoint:
    """The lab's JSON endpoint (see the module docstring)."""

    def __init__(self, lab: lab_module.Lab) -> None:
        self.lab = lab
        self._server = _http.JsonServer(self._route, name="devenv-control")

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def _route(self, method: str, path: str, query: dict[str, list[str]],
               body: dict[str, Any] | None) -> tuple[int, object]:
        if method == "GET" and path == "/status":
            return 200, self.lab.snapshot()
        if method == "POST" and path == "/provision":
            return 200, {"changed": self.lab.provision(), "image": self.lab.describe()["image"]}
        if method == "GET" and path == "/stats":
            return 200, {"shards": self.lab.shard_stats(), "reconciles": self.lab.reconciles()}
        return 404, {"error": f"no route for {method} {path}"}


def _failed(directory: Path, reason: str) -> None:
    control.write_private(directory / control.FAILED, json.dumps({"error": reason}))


def _quiet_libraries() -> None:
    # One endpoint serves many systems here, so urllib3's per-host pool (10) overflows and it
    # warns on every extra connection; sushy warns when a session outlives its emulator at exit.
    for name in ("urllib3.connectionpool", "sushy.connector", "sushy.main"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metalcubed-devenv-lab")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    _quiet_libraries()
    stop = threading.Event()
    runtime.stop_on_signals(stop)
    try:
        config = lab_config.LabConfig.from_json((directory / control.CONFIG).read_text())
        lab = lab_module.Lab(config, directory=directory, log_file=sys.stderr,
                             lab_id=uuid.uuid4().hex[:8])
    except (OSError, ValueError, TypeError, KeyError) as err:
        _failed(directory, f"bad lab configuration: {err}")
        return 1
    started = time.monotonic()
    endpoint = ControlEndpoint(lab)
    try:
        lab.start()
        url = endpoint.start()
    except Exception as err:
        log.exception("the lab did not start")
        lab.stop()
        _failed(directory, str(err) or type(err).__name__)
        return 1
    state = {
        "pid": os.getpid(),
        "url": url,
        "startedAt": time.time(),
        "startSeconds": round(time.monotonic() - started, 2),
        "lab": lab.describe(),
    }
    control.write_private(directory / control.STATE, json.dumps(state, indent=2))
    log.info("lab ready in %.1f s: control endpoint %s", state["startSeconds"], url)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping the lab")
        endpoint.stop()
        lab.stop()
        (directory / control.STATE).unlink(missing_ok=True)
        log.info("lab stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
