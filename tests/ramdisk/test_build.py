"""The builder's bad input and its pure pieces (no downloads, no VM)."""

from pathlib import Path

import pytest

from metalcubed.ramdisk import __main__ as cli
from metalcubed.ramdisk import build, debs


@pytest.mark.parametrize(("flag", "value"), [("--api-url", "ftp://h/"),
                                             ("--boot-url", "http://h/a b"),
                                             ("--report-url", "172.22.0.1:8089")])
def test_a_bad_url_is_an_error_naming_the_flag(tmp_path: Path, flag: str, value: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build", "--out", str(tmp_path), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} must be an http(s) URL") and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing built


def test_an_unknown_package_says_to_update_apt() -> None:
    with pytest.raises(debs.BuildError, match=r"no-such-package-mc3: run `apt-get update`"):
        debs.candidates(["busybox-static", "no-such-package-mc3"])


def test_the_ipxe_script_passes_the_booting_mac_and_the_agent_parameters() -> None:
    params = build.deploy_params("http://172.22.0.1:6385")
    script = build.ipxe_script("http://172.22.0.1:6180/files/", params)
    assert script.splitlines() == [
        "#!ipxe",
        "kernel http://172.22.0.1:6180/files/vmlinuz console=tty0 console=ttyS0,115200 "
        "ipa-api-url=http://172.22.0.1:6385 BOOTIF=01-${net0/mac:hexhyp} initrd=initrd.gz",
        "initrd http://172.22.0.1:6180/files/initrd.gz",
        "boot"]
    assert "kernel vmlinuz " in build.ipxe_script("", params)  # relative to the script
