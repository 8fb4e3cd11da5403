#!/usr/bin/env bash
# Build a real kube-apiserver and etcd from the Go module proxy, cached outside the checkout.
#
# usage: tests/kube/build-kube.sh            # prints the directory that holds both binaries
# env:   KUBE_VERSION (1.36.3, the minor of the pinned `kubernetes` Python client 36.x)
#        ETCD_VERSION (v3.6.16), METALCUBED_KUBE_CACHE (~/.cache/metalcubed/kube)
# Cold: about 10-20 min on 2 cores (module download + compile); warm: instant.
set -euo pipefail
KV=${KUBE_VERSION:-1.36.3}
EV=${ETCD_VERSION:-v3.6.16}
CACHE=${METALCUBED_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metalcubed/kube}
OUT="$CACHE/k8s-$KV-etcd-$EV"
log() { printf '[build-kube] %s\n' "$*" >&2; }

if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/etcd" ]; then
  echo "$OUT"; exit 0
fi
command -v go >/dev/null || { log "Go is missing: install Go >= 1.25 (apt-get install golang-go is too old; use the machine's /usr/local/go)"; exit 3; }
mkdir -p "$OUT"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
start=$(date +%s)

if [ ! -x "$OUT/etcd" ]; then
  log "etcd $EV: fetching modules"
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  ( cd "$W" && go mod init local/etcd-build >/dev/null 2>&1 \
      && go get "go.etcd.io/etcd/server/v3@$EV" >&2 \
      && log "etcd $EV: compiling" \
      && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 )
  mv "$OUT/etcd.tmp" "$OUT/etcd"
  log "etcd built in $(( $(date +%s) - start )) s"
fi

if [ ! -x "$OUT/kube-apiserver" ]; then
  MINOR=${KV#1.}; MINOR=${MINOR%%.*}
  SV=v0.${KV#1.}
  W2=$(mktemp -d)
  cd "$W2"
  go mod init local/kube-apiserver-build >/dev/null 2>&1
  log "kube-apiserver $KV: reading k8s.io/kubernetes go.mod"
  GOMOD=$(go mod download -json "k8s.io/kubernetes@v$KV" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$GOMOD"); do
    go mod edit -replace="$m=$m@$SV"
  done
  go mod edit -go="$(awk '$1=="go"{print $2; exit}' "$GOMOD")"
  log "kube-apiserver $KV: fetching modules (about 1 GB, first time only)"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@v$KV" >&2
  LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD+=" -X $p.gitVersion=v$KV -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  log "kube-apiserver $KV: compiling (the long part)"
  go build -p 2 -trimpath -tags notest -ldflags "$LD" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
  cd / && rm -rf "$W2"
  log "kube-apiserver built; total $(( $(date +%s) - start )) s"
fi
echo "$OUT"
