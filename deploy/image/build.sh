#!/usr/bin/env bash
# Build the metalcubed container image without any container registry: the base file system
# from Debian's packages (debootstrap, minbase + python3), the project's wheel and its PyPI
# dependencies installed into it, assembled into an OCI image with buildah (Debian's package)
# and committed to the local containers-storage that podman reads.
#
# usage: deploy/image/build.sh            (or `make image`; run as root)
#        deploy/image/build.sh --print-digest   the source digest only (no build): the image
#          carries it as label metalcubed.source-digest, so a test can tell a stale image
# env:   IMAGE (default localhost/metalcubed:<version from pyproject.toml>; also tagged :latest)
#        DEBIAN_SUITE (bookworm)  DEBIAN_MIRROR (http://deb.debian.org/debian)
#        METALCUBED_IMAGE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/metalcubed/image): the
#          debootstrapped base as a tarball, so a rebuild only reinstalls the wheel
#        OCI_ARCHIVE (optional): also write the image there as an oci-archive (podman load -i)
# Prints the image name on stdout; progress, the image size and the build time on stderr.
#
# The image: entry point `metalcubed` (so `podman run IMAGE manager --provisioner fixture`),
# user 65532:65532 (non-root), nothing written under / at run time (bytecode compiled at build
# time, PYTHONDONTWRITEBYTECODE=1, HOME=/tmp): it runs with a read-only root file system and a
# writable /tmp (an emptyDir in the chart, --tmpfs /tmp with podman).
set -euo pipefail
start=$(date +%s)
cd "$(dirname "$0")/../.."
REPO=$PWD
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${METALCUBED_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metalcubed/image}
PYTHON=${PYTHON:-python3}
VERSION=$("$PYTHON" -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
IMAGE=${IMAGE:-localhost/metalcubed:$VERSION}
# The base's packages: the interpreter the wheel runs on and the CA bundle for TLS to BMCs.
PACKAGES=python3,ca-certificates
UID_GID=65532
# What goes into the wheel (setup.py's roots) and into the image: all the digest covers.
SOURCES=(setup.py pyproject.toml README.md cli core controllers simulators scenarios ramdisk deploy/image)
source_files() {
  git -C "$REPO" ls-files -z --cached --others --exclude-standard -- "${SOURCES[@]}" \
    | (cd "$REPO" && xargs -0 -r ls -d 2>/dev/null) | grep -v -e '__pycache__' -e '\.pyc$' | sort
}
source_digest() {
  (cd "$REPO" && source_files | tr '\n' '\0' | xargs -0 -r sha256sum | sha256sum | cut -c1-16)
}
if [ "${1:-}" = "--print-digest" ]; then source_digest; exit 0; fi
log() { printf '[build-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap creates device nodes and root-owned files)"
for tool in debootstrap buildah podman; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y debootstrap buildah podman"
done
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9

BASE="$CACHE/base-$SUITE-$(printf %s "$MIRROR $PACKAGES" | sha256sum | cut -c1-12).tar"
WORK=$(mktemp -d "$CACHE/.work.XXXXXX")
ctr=
cleanup() {
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"

if [ ! -f "$BASE" ]; then
  log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR: first build only"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # What a container never uses: package caches and lists, docs, man pages, locales.
  rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/* \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/*
  tar -C "$ROOTFS" -cf "$BASE.tmp" . && mv "$BASE.tmp" "$BASE"
  log "base cached: $BASE ($(du -sh "$BASE" | cut -f1))"
else
  log "base from cache: $BASE"
  tar -C "$ROOTFS" -xf "$BASE"
fi

# The wheel runs on the base's interpreter: same minor version as the one that installs it.
IMAGE_PY=$(ls "$ROOTFS"/usr/bin/python3.* | grep -Eo 'python3\.[0-9]+$' | head -1)
HOST_PY=$("$PYTHON" -c 'import sys;print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')
[ "$IMAGE_PY" = "$HOST_PY" ] || die "the base has $IMAGE_PY but $PYTHON is $HOST_PY: set PYTHON= to a $IMAGE_PY"

log "building the project's wheel"
# From a copy of the checkout's files (tracked and not ignored): the build leaves nothing in it.
mkdir -p "$WORK/src"
DIGEST=$(source_digest)
(cd "$REPO" && source_files | tar -T - -cf -) | tar -C "$WORK/src" -xf -
"$PYTHON" -m pip wheel -q --no-deps --disable-pip-version-check -w "$WORK/wheel" "$WORK/src" >&2
WHEEL=$(ls "$WORK"/wheel/metalcubed-*.whl)
SITE="$ROOTFS/usr/local/lib/$IMAGE_PY/dist-packages"    # on Debian's python3 sys.path
log "installing $(basename "$WHEEL") and its dependencies into the image"
PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install -q --no-warn-script-location \
  --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore \
  --target "$SITE" "$WHEEL" >&2
rm -rf "$SITE/bin"        # console scripts with the build host's interpreter in the shebang
cat >"$ROOTFS/usr/local/bin/metalcubed" <<'EOF'
#!/usr/bin/python3
import sys

from metalcubed.cli.main import main

sys.exit(main())
EOF
chmod 755 "$ROOTFS/usr/local/bin/metalcubed"
# Compile the bytecode now: at run time the root file system is read-only.
"$ROOTFS/usr/bin/$IMAGE_PY" -V >/dev/null 2>&1 || true
chroot "$ROOTFS" "/usr/bin/$IMAGE_PY" -m compileall -q -j 0 "/usr/local/lib/$IMAGE_PY/dist-packages" >/dev/null \
  || die "compiling the bytecode in the image failed"
echo "metalcubed:x:$UID_GID:$UID_GID:metalcubed:/tmp:/usr/sbin/nologin" >>"$ROOTFS/etc/passwd"
echo "metalcubed:x:$UID_GID:" >>"$ROOTFS/etc/group"
chroot "$ROOTFS" /usr/local/bin/metalcubed --help >/dev/null \
  || die "the installed metalcubed does not start in the image's root file system"

log "assembling the image with buildah"
ctr=$(buildah from --quiet scratch)
tar -C "$ROOTFS" -cf "$WORK/rootfs.tar" .
buildah add --quiet "$ctr" "$WORK/rootfs.tar" / >/dev/null
buildah config \
  --entrypoint '["metalcubed"]' --cmd '["--help"]' \
  --user "$UID_GID:$UID_GID" --workingdir /tmp \
  --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1 --env HOME=/tmp \
  --port 6180/tcp --port 6385/tcp --port 8443/tcp --port 9440/tcp --port 9443/tcp \
  --label org.opencontainers.image.title=metalcubed \
  --label org.opencontainers.image.version="$VERSION" \
  --label metalcubed.source-digest="$DIGEST" \
  --label org.opencontainers.image.description="Metal3 (bare-metal host management for Kubernetes) in Python" \
  --label org.opencontainers.image.base.name="debian:$SUITE (debootstrap minbase)" \
  "$ctr"
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
buildah commit --quiet --rm "$ctr" "$IMAGE" >/dev/null
ctr=
buildah tag "$IMAGE" "${IMAGE%:*}:latest"
# The image this build replaced, now untagged: removed unless a container still uses it.
if [ -n "$previous" ] && [ -z "$(podman image inspect --format '{{join .RepoTags ","}}' "$previous" 2>/dev/null)" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
if [ -n "${OCI_ARCHIVE:-}" ]; then
  rm -f "$OCI_ARCHIVE"
  buildah push --quiet "$IMAGE" "oci-archive:$OCI_ARCHIVE:$IMAGE" >/dev/null
  log "oci-archive: $OCI_ARCHIVE ($(du -h "$OCI_ARCHIVE" | cut -f1))"
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE: $((size / 1000000)) MB uncompressed, in $(( $(date +%s) - start )) s"
echo "$IMAGE"
