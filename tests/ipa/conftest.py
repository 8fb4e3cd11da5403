"""The stock Ironic Python Agent for tests: IPA 13.0.0 from PyPI in its own cached venv.

`ipa_venv` creates ~/.cache/metalcubed/ipa-venv (or $METALCUBED_IPA_VENV) with
`python3 -m venv`, installs `ironic-python-agent==13.0.0` and the test's hardware manager
(tests/ipa/hwm, an ordinary plugin package on IPA's `ironic_python_agent.hardware_managers`
entry point) with pip, and reuses it while the stamp (versions and the plugin's hash) matches.
A cold install takes about a minute here (15 s of CPU; the rest is PyPI); a warm one is a
file read. Any failure fails the test
naming the command. `parted` must be installed (apt-get install parted): IPA runs it to read
and extend the disk's partition table.
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from metalcubed.controllers import engine_services, memory
from metalcubed.core.provisioning import context, nodes
from metalcubed.simulators import hostmodel_bmc, imageserver
from tests.ipa.rig import CREDS, KEY, MAC, World

IPA_VERSION = "13.0.0"
HERE = pathlib.Path(__file__).parent
HWM = HERE / "hwm"


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n"
                    f"{(proc.stdout + proc.stderr)[-3000:]}", pytrace=False)


def _stamp() -> str:
    digest = hashlib.sha256()
    for path in sorted(HWM.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return f"ironic-python-agent=={IPA_VERSION} hwm={digest.hexdigest()} python={sys.version}"


@pytest.fixture(scope="session")
def ipa_venv() -> pathlib.Path:
    if shutil.which("parted") is None:
        pytest.fail("the stock IPA test needs parted: apt-get install parted", pytrace=False)
    default = pathlib.Path.home() / ".cache" / "metalcubed" / "ipa-venv"
    venv = pathlib.Path(os.environ.get("METALCUBED_IPA_VENV", default))
    stamp = venv / "metalcubed-stamp"
    agent = venv / "bin" / "ironic-python-agent"
    if agent.exists() and stamp.exists() and stamp.read_text() == _stamp():
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = str(venv / "bin" / "pip")
    _run([pip, "install", "-q", "--disable-pip-version-check",
          f"ironic-python-agent=={IPA_VERSION}"])
    with tempfile.TemporaryDirectory() as build:  # builds out of tree: tests/ stays clean
        copy = pathlib.Path(build) / "hwm"
        shutil.copytree(HWM, copy)
        _run([pip, "install", "-q", "--disable-pip-version-check", str(copy)])
    stamp.write_text(_stamp())
    return venv


@pytest.fixture
def world(ipa_venv: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[World]:
    images = imageserver.ImageServer()
    images.start()
    kernel = images.add("ipa.kernel", b"deploy kernel")
    ramdisk = images.add("ipa.initramfs", b"deploy ramdisk")

    bmcs = hostmodel_bmc.SimBmcs(credentials=CREDS)
    services = engine_services.EngineServices(
        clock=memory.WallClock(), drivers=hostmodel_bmc.driver_for(bmcs), store_hosts=None,
        config=engine_services.EngineServiceConfig(
            deploy_kernel_url=kernel, deploy_ramdisk_url=ramdisk, agent_timeout_s=300.0,
            engine=context.EngineConfig(poll_s=0.2, short_poll_s=0.1, busy_retry_s=0.2,
                                        ramdisk_timeout_s=120.0)),
    )
    services.start()
    node_id = nodes.node_id_for(KEY)
    # What the engine records for the host once it booted the ramdisk to deploy.
    services.table.put(nodes.Node(node_id=node_id, name=nodes.node_name(KEY),
                                  bmc_address="192.0.2.1:623", macs=(MAC,),
                                  wait=nodes.Wait(purpose=nodes.Purpose.DEPLOY,
                                                  since=services.clock.now())))
    w = World(services, images, node_id, tmp_path, ipa_venv, [], bmcs)
    try:
        yield w
    finally:
        for ipa in w.started:
            if ipa.process.poll() is None:
                ipa.process.terminate()
                try:
                    ipa.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    ipa.process.kill()
                    ipa.process.wait()
        services.stop()
        images.stop()


