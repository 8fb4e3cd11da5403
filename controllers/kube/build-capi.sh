#!/usr/bin/env bash
# Build real Cluster API core (the `manager` binary of sigs.k8s.io/cluster-api) from the Go module
# proxy, pinned, cached outside the checkout, and keep the module's CRDs beside it.
# kube-controller-manager (the garbage collector CAPI's deletion relies on) comes from
# build-kube.sh, which this script runs first, so one command yields every binary.
#
# usage: build-capi.sh          # prints the directory that holds capi-manager + crds/ on stdout
# env:   CAPI_VERSION (v1.13.6: the newest release the proxy serves that `go build` accepts;
#                      v1.14.x carries replace directives in its go.mod)
#        GO_BUILD_PARALLEL (-p for go build; default 1, the machine's cores are shared)
#        METALCUBED_CAPI_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/metalcubed/capi)
# Progress goes to stderr. Cold: ~5-10 min on 2 shared cores; warm: instant.
# Keep CAPI_VERSION in step with CAPI_VERSION in localcluster.py (a test checks).
#
# Why a wrapper module: `go install sigs.k8s.io/cluster-api@v1.13.6` works too, but a wrapper
# lets us pin, stamp the version and locate the module's config/ (CRDs, webhook manifests)
# with `go mod download -json` from the same module cache.
set -euo pipefail
CV=${CAPI_VERSION:-v1.13.6}
PAR=${GO_BUILD_PARALLEL:-1}
CACHE=${METALCUBED_CAPI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metalcubed/capi}
OUT="$CACHE/capi-$CV"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[build-capi %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

complete() {
  [ -x "$OUT/capi-manager" ] && [ -f "$OUT/crds/.complete" ]
}

# kube-controller-manager, kube-apiserver, etcd and kubectl: same cache as `metalcubed kube start`.
KUBE_DIR=$(bash "$HERE/build-kube.sh")
[ -x "$KUBE_DIR/kube-controller-manager" ] || { log "build-kube.sh gave no kube-controller-manager"; exit 4; }

if complete; then echo "$OUT"; exit 0; fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
if command -v flock >/dev/null && ! flock -n 9; then
  log "another build holds $CACHE/.build.lock; waiting for it"
  flock 9
fi
if complete; then echo "$OUT"; exit 0; fi

GO=$(command -v go || true)
[ -n "$GO" ] || [ ! -x /usr/local/go/bin/go ] || GO=/usr/local/go/bin/go
[ -n "$GO" ] || {
  log "Go is missing: install Go >= 1.25 (e.g. /usr/local/go; Debian's golang-go is too old)"
  exit 3
}
mkdir -p "$OUT"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
start=$(date +%s)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
"$GO" mod init local/capi-build >/dev/null 2>&1
log "cluster-api $CV: fetching modules (~90 modules the first time)"
"$GO" get "sigs.k8s.io/cluster-api@$CV" >&2
MODDIR=$("$GO" mod download -json "sigs.k8s.io/cluster-api@$CV" \
  | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
if [ ! -x "$OUT/capi-manager" ]; then
  LD="-s -w"
  p=sigs.k8s.io/cluster-api/version
  LD+=" -X $p.gitVersion=$CV -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  MAJ=${CV#v}; MAJ=${MAJ%%.*}; MIN=${CV#v*.}; MIN=${MIN%%.*}
  LD+=" -X $p.gitMajor=$MAJ -X $p.gitMinor=$MIN"
  # One change to upstream, nothing else: v1.13.6 has no flag for the webhook server's bind
  # address and listens on every interface; ours binds 127.0.0.1 only. Go refuses overlays
  # inside the module cache, so build from a writable copy of the module (`replace`).
  cp -r "$MODDIR" "$W/cluster-api"
  chmod -R u+w "$W/cluster-api"
  sed -i 's|^\(\t*\)Port: *webhookPort,|&\n\1Host:     "127.0.0.1",|' "$W/cluster-api/main.go"
  grep -q 'Host:     "127.0.0.1"' "$W/cluster-api/main.go" \
    || { log "upstream main.go changed: cannot bind the webhook server to loopback"; exit 5; }
  "$GO" mod edit -replace="sigs.k8s.io/cluster-api=./cluster-api"
  log "cluster-api $CV: compiling the core manager (go build -p $PAR)"
  "$GO" build -p "$PAR" -trimpath -ldflags "$LD" -o "$OUT/capi-manager.tmp" sigs.k8s.io/cluster-api
  mv "$OUT/capi-manager.tmp" "$OUT/capi-manager"
  log "capi-manager built ($(( $(date +%s) - start )) s so far)"
fi
# The module's own CRDs (core + ipam + runtime addons) and webhook manifests, read-only in the
# module cache: copy them so callers need not know where GOMODCACHE is.
rm -rf "$OUT/crds" "$OUT/webhook"
mkdir -p "$OUT/crds" "$OUT/webhook"
cp "$MODDIR"/config/crd/bases/*.yaml "$OUT/crds/"
cp "$MODDIR"/config/webhook/manifests.yaml "$OUT/webhook/" 2>/dev/null || true
chmod -R u+w "$OUT/crds" "$OUT/webhook"
printf '%s\n' "$CV" >"$OUT/crds/.complete"
log "done in $(( $(date +%s) - start )) s: $OUT"
echo "$OUT"
