"""`metalcubed crds [--out DIR]`: the CustomResourceDefinitions of every kind we serve.

Generated from the core/api models by controllers.kube.crdgen. Without --out the CRDs go to
stdout as one YAML stream (`metalcubed crds | kubectl apply -f -`); with --out they are written
one file per kind plus a kustomization.yaml (how controllers/manifests/crds is refreshed).
"""

import argparse
import sys
from pathlib import Path

from metalcubed.cli import checks
from metalcubed.controllers.kube import crdgen


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "crds", help="print or write the CRDs generated from the API models", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=None, help="write files into this directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0, or 2 when --out cannot be written (a file, a missing parent, a full device)."""
    if args.out is not None:
        try:
            checks.output_dir("--out", args.out)
        except checks.BadInput as err:
            print(f"metalcubed crds: {err}", file=sys.stderr)
            return checks.EXIT_BAD_INPUT
    crds = crdgen.generate_all()
    if args.out is None:
        for crd in crds:
            sys.stdout.write(crdgen.to_yaml(crd))
        return checks.EXIT_OK
    try:
        written = crdgen.write(args.out, crds)
    except OSError as err:
        print(f"metalcubed crds: --out: cannot write into {args.out}: {err.strerror or err}",
              file=sys.stderr)
        return checks.EXIT_BAD_INPUT
    for path in written:
        print(path)
    return checks.EXIT_OK
