#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kubectl and etcd from the Go module proxy into
# the cache outside the checkout, and print the directory holding them.
# Thin wrapper: the build logic ships inside the package (controllers/kube/build-kube.sh) so an
# installed `metalcubed kube start` can build on first use too. See docs/local-apiserver.md.
exec bash "$(dirname "$0")/../../controllers/kube/build-kube.sh" "$@"
