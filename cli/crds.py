"""`metalcubed crds [--out DIR]`: the CustomResourceDefinitions of every kind we serve.

Generated from the core/api models by controllers.kube.crdgen. Without --out the CRDs go to
stdout as one YAML stream (`metalcubed crds | kubectl apply -f -`); with --out they are written
one file per kind plus a kustomization.yaml (how controllers/manifests/crds is refreshed).
"""

import argparse
import sys
from pathlib import Path

from metalcubed.controllers.kube import crdgen


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "crds", help="print or write the CRDs generated from the API models", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=None, help="write files into this directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    crds = crdgen.generate_all()
    if args.out is None:
        for crd in crds:
            sys.stdout.write(crdgen.to_yaml(crd))
        return 0
    for path in crdgen.write(args.out, crds):
        print(path)
    return 0
