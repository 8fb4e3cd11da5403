# The two set-up commands of the README. `make test` is what CI runs (.ci/run).
PYTHON ?= python3

.PHONY: test sim install-test-tools

# Install the project with its dev extra and the system tools the hardware tests use, then run
# the whole suite: unit, contract, property, scenario, BMC-emulator and real-API-server tests,
# plus ruff, mypy --strict on core/ and the import-linter contracts.
test: install-test-tools
	$(PYTHON) -m pip install -q -e '.[dev]'
	$(PYTHON) -m pytest

install-test-tools:
	@command -v ipmitool >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq ipmitool >/dev/null; }
	@command -v parted >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq parted >/dev/null; }

# The main job: a fleet scenario on the embedded default.
sim:
	$(PYTHON) -m pip install -q .
	metalcubed sim scenarios/quickstart.yaml
