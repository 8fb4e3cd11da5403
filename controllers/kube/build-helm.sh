#!/usr/bin/env bash
# Build a pinned `helm` from the Go module proxy, cached outside the checkout (as build-kube.sh
# does for kube-apiserver). Shipped inside the package so the chart tests and a user with only
# the wheel can build it the same way.
#
# usage: build-helm.sh          # prints the path of the helm binary on stdout
# env:   HELM_VERSION (v4.3.2; v3.x works too: the chart is apiVersion v2, Helm 3 and 4 read it)
#        METALCUBED_HELM_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/metalcubed/helm)
# Progress goes to stderr. Cold: a few minutes on 2 cores (module download + compile); warm: instant.
# helm's go.mod has no replace lines, so a plain `go install <module>/cmd/helm@<version>` builds it.
set -euo pipefail
HV=${HELM_VERSION:-v4.3.2}
CACHE=${METALCUBED_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metalcubed/helm}
OUT="$CACHE/helm-$HV"
log() { printf '[build-helm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -x "$OUT/helm" ]; then echo "$OUT/helm"; exit 0; fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
if command -v flock >/dev/null && ! flock -n 9; then
  log "another build holds $CACHE/.build.lock; waiting for it"
  flock 9
fi
if [ -x "$OUT/helm" ]; then echo "$OUT/helm"; exit 0; fi

command -v go >/dev/null || {
  log "Go is missing: install Go >= 1.26 (e.g. /usr/local/go; Debian's golang-go is too old)"
  exit 3
}
MAJOR=${HV%%.*}                      # v3 | v4: the module path carries the major version
case "$MAJOR" in v3|v4) ;; *) log "HELM_VERSION=$HV: expected v3.x.y or v4.x.y"; exit 2;; esac
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
start=$(date +%s)
mkdir -p "$OUT"
TMP=$(mktemp -d "$OUT/.gobin.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# Stamp the version as helm's Makefile does, so `helm version` tells the truth.
LD="-s -w -X helm.sh/helm/$MAJOR/internal/version.version=$HV"
LD+=" -X helm.sh/helm/$MAJOR/internal/version.gitTreeState=clean"
# And the Kubernetes version `helm template`/`lint` assume without a cluster (Helm 3's Makefile
# derives it from client-go's v0.<minor>; unstamped, Helm 3 assumes v1.20 and refuses charts
# needing a newer kubeVersion). Helm 4 reads it from its build info and lacks these symbols.
GOMOD=$(go mod download -json "helm.sh/helm/$MAJOR@$HV" \
  | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
KMINOR=$(awk '$1=="k8s.io/client-go"{split($2,v,".");print v[2];exit}' "$GOMOD")
for p in pkg/lint/rules pkg/chartutil; do
  LD+=" -X helm.sh/helm/$MAJOR/$p.k8sVersionMajor=1 -X helm.sh/helm/$MAJOR/$p.k8sVersionMinor=$KMINOR"
done
log "helm $HV: fetching modules and compiling"
GOBIN="$TMP" go install -trimpath -ldflags "$LD" "helm.sh/helm/$MAJOR/cmd/helm@$HV"
mv "$TMP/helm" "$OUT/helm"
log "done in $(( $(date +%s) - start )) s: $OUT/helm"
echo "$OUT/helm"
