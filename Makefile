# The two set-up commands of the README. `make test` is what CI runs (.ci/run).
PYTHON ?= python3

.PHONY: test sim install-test-tools devenv-deps image image-deps

# Install the project with its dev extra and the system tools the hardware tests use, then run
# the whole suite: unit, contract, property, scenario, BMC-emulator and real-API-server tests,
# plus ruff, mypy --strict on core/ and the import-linter contracts.
test: install-test-tools devenv-deps image-deps
	$(PYTHON) -m pip install -q -e '.[dev]'
	$(PYTHON) -m pytest

install-test-tools:
	@command -v ipmitool >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq ipmitool >/dev/null; }
	@command -v parted >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq parted >/dev/null; }

# What `metalcubed devenv up --backend libvirt` and the `libvirt` tests need (the same list as
# simulators/devenv/libvirtlab/deps.py; a test keeps them equal): libvirt's daemons, QEMU with
# its BIOS/UEFI/iPXE firmware, qemu-img, dnsmasq, ipmitool, and what libvirt-python builds
# against (the deploy ramdisk is built from downloaded Debian packages, nothing installed); then libvirt-python, sushy-tools and virtualbmc. Installs only
# what is missing (about 45 s and 150 MB the first time).
DEVENV_APT = libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 \
	qemu-utils ovmf ipxe-qemu dnsmasq-base ipmitool pkg-config libvirt-dev gcc python3-dev
devenv-deps:
	@missing=$$(for p in $(DEVENV_APT); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing $$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$$missing >/dev/null; fi
	$(PYTHON) -m pip install -q libvirt-python sushy-tools virtualbmc

# The container image (docs/deploy.md): a Debian base made by debootstrap, the project's wheel
# and its dependencies, assembled with buildah into podman's local storage as
# localhost/metalcubed:<version>; prints its size and the build time. No container registry used.
image: image-deps
	bash deploy/image/build.sh

# What `make image` and tests/deploy need: debootstrap, buildah, podman and runc (podman's runtime
# where crun refuses a cgroup v1/v2 hybrid host). Installs only what is missing.
IMAGE_APT = debootstrap buildah podman runc uidmap
image-deps:
	@missing=$$(for p in $(IMAGE_APT); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing $$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$$missing >/dev/null; fi

# The main job: a fleet scenario on the embedded default.
sim:
	$(PYTHON) -m pip install -q .
	metalcubed sim scenarios/quickstart.yaml
