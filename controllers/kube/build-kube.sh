#!/usr/bin/env bash
# Build a real kube-apiserver, kube-controller-manager, kubectl and etcd from the Go module
# proxy, cached outside the checkout. Shipped inside the package (metalcubed.controllers.kube)
# so `metalcubed kube start` can build on first use from an installed wheel;
# tests/kube/build-kube.sh is a thin wrapper around this file.
#
# usage: build-kube.sh          # prints the directory that holds the binaries on stdout
# env:   KUBE_VERSION (1.36.3: the minor of the pinned `kubernetes` Python client 36.x)
#        ETCD_VERSION (v3.6.16)
#        METALCUBED_KUBE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/metalcubed/kube)
# Progress goes to stderr. Cold: ~20-30 min on 2 cores (module download + compile); warm: instant.
# Keep the defaults in step with KUBE_VERSION/ETCD_VERSION in localcluster.py (a test checks).
#
# Why a wrapper module: k8s.io/kubernetes requires its staging repos at v0.0.0 and relies on
# local replace lines that Go ignores in a dependency, so `go install` cannot build it. We add
# one `replace k8s.io/<x> => k8s.io/<x> v0.<minor>.<patch>` per staging module, generated from
# k/k's own go.mod at that version (the list changes with each minor). etcd's server module
# needs no replace lines but gets its own wrapper so MVS does not bump the apiserver's etcd
# client libraries.
set -euo pipefail
KV=${KUBE_VERSION:-1.36.3}
EV=${ETCD_VERSION:-v3.6.16}
CACHE=${METALCUBED_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metalcubed/kube}
OUT="$CACHE/k8s-$KV-etcd-$EV"
K8S_COMMANDS="kube-apiserver kube-controller-manager kubectl"
log() { printf '[build-kube %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

complete() {
  local c
  for c in etcd $K8S_COMMANDS; do [ -x "$OUT/$c" ] || return 1; done
}

if complete; then echo "$OUT"; exit 0; fi
mkdir -p "$CACHE"
# One build at a time per cache (pytest sessions, `metalcubed kube start` and CI may race).
exec 9>"$CACHE/.build.lock"
if command -v flock >/dev/null && ! flock -n 9; then
  log "another build holds $CACHE/.build.lock; waiting for it"
  flock 9
fi
if complete; then echo "$OUT"; exit 0; fi

command -v go >/dev/null || {
  log "Go is missing: install Go >= 1.25 (e.g. /usr/local/go; Debian's golang-go is too old)"
  exit 3
}
mkdir -p "$OUT"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
start=$(date +%s)
WORK=()
trap 'rm -rf "${WORK[@]}"' EXIT

if [ ! -x "$OUT/etcd" ]; then
  W=$(mktemp -d); WORK+=("$W")
  log "etcd $EV: fetching modules"
  ( cd "$W" && go mod init local/etcd-build >/dev/null 2>&1 \
      && go get "go.etcd.io/etcd/server/v3@$EV" >&2 \
      && printf '[build-kube] etcd %s: compiling\n' "$EV" >&2 \
      && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 )
  mv "$OUT/etcd.tmp" "$OUT/etcd"
  log "etcd built ($(( $(date +%s) - start )) s so far)"
fi

missing=()
for c in $K8S_COMMANDS; do [ -x "$OUT/$c" ] || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
  MINOR=${KV#1.}; MINOR=${MINOR%%.*}
  SV=v0.${KV#1.}
  W=$(mktemp -d); WORK+=("$W")
  cd "$W"
  go mod init local/kube-build >/dev/null 2>&1
  log "kubernetes $KV: reading k8s.io/kubernetes go.mod"
  GOMOD=$(go mod download -json "k8s.io/kubernetes@v$KV" \
    | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$GOMOD"); do
    go mod edit -replace="$m=$m@$SV"
  done
  go mod edit -go="$(awk '$1=="go"{print $2; exit}' "$GOMOD")"
  log "kubernetes $KV: fetching modules (about 1 GB, first time only)"
  pkgs=()
  for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c@v$KV"); done
  go get "${pkgs[@]}" >&2
  # Stamp the version as hack/lib/version.sh does, so /version and kubectl version tell the truth.
  LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD+=" -X $p.gitVersion=v$KV -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
    LD+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "${missing[@]}"; do
    log "$c $KV: compiling (kube-apiserver is the long part)"
    go build -trimpath -tags notest -ldflags "$LD" -o "$OUT/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$OUT/$c.tmp" "$OUT/$c"
    log "$c built ($(( $(date +%s) - start )) s so far)"
  done
  cd /
fi
log "done in $(( $(date +%s) - start )) s: $OUT"
echo "$OUT"
