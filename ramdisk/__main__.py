"""`python3 -m metalcubed.ramdisk build --out DIR ...`: build the lab's boot artefacts."""

import argparse
import sys
from pathlib import Path

from metalcubed.ramdisk import build, debs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m metalcubed.ramdisk",
                                     description="Build the deploy ramdisk (kernel, initrd, ISO, "
                                                 "iPXE script) and the tiny OS image from "
                                                 "Debian packages.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("build", help="build everything into --out")
    cmd.add_argument("--out", required=True, type=Path, help="output directory")
    cmd.add_argument("--api-url", default="",
                     help="agent API URL (ipa-api-url); default http://<DHCP server>:6385")
    cmd.add_argument("--boot-url", default="",
                     help="URL --out is served at (for boot.ipxe); default: beside the script")
    cmd.add_argument("--report-url", default="",
                     help="where the tiny OS reports its hostname; {server} = the DHCP "
                          "server (default http://{server}:8089/booted)")
    cmd.add_argument("--extra-params", default="", help="more kernel parameters for the agent")
    cmd.add_argument("--cache", type=Path, default=debs.DEFAULT_CACHE,
                     help=f"download and build cache (default {debs.DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    try:
        artefacts = build.build_all(args.out, api_url=args.api_url, boot_url=args.boot_url,
                                    report_url=args.report_url, extra_params=args.extra_params,
                                    cache=args.cache)
    except debs.BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.filename or args.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(artefacts.as_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
