"""A stand-alone CAPM3 conversion webhook (`/convert`) for the local lab, on 127.0.0.1 only.

Why: `metalcubed kube start --capi` returns while its processes keep running, and the CAPM3
CRDs it installs convert v1beta1 <-> v1beta2 through a webhook, so something must serve
ConversionReviews after the command exits. This is that process: the manager's webhook server
(controllers/kube/webhook.py) with only the conversion handler (core/api/capm3/conversion.py),
started by capi.py through `localcluster.launch_extra` and stopped with the cluster. In a
deployment the manager serves the same handler at the same path.

usage: python3 -m metalcubed.controllers.kube.conversionserver --port N --cert-dir DIR
       (DIR holds tls.crt and tls.key; serves until SIGTERM/SIGINT)
"""

import argparse
import signal
import sys
import threading
from pathlib import Path

from metalcubed.controllers.kube import webhook
from metalcubed.core.api.capm3 import conversion

PATH = "/convert"


def serve(port: int, cert_dir: Path, stop: threading.Event) -> None:
    tls = webhook.server_context(str(cert_dir / "tls.crt"), str(cert_dir / "tls.key"))
    server = webhook.WebhookServer(("127.0.0.1", port), tls=tls)
    server.register(PATH, webhook.conversion_handler(conversion.convert))
    server.run(stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    for name in ("tls.crt", "tls.key"):
        if not (args.cert_dir / name).is_file():
            print(f"--cert-dir: {args.cert_dir / name} is missing", file=sys.stderr)
            return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"serving {PATH} on https://127.0.0.1:{args.port}", flush=True)
    serve(args.port, args.cert_dir, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
