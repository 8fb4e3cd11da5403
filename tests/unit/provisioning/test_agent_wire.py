"""The agent's wire format (IPA 13, docs/agent.md): command payloads and answers, the Ironic
agent API's lookup, heartbeat and tokens, and the ISO images (config drive, deploy ISO)."""

import base64
import dataclasses
import gzip
import io
import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pycdlib
import pytest

from metalcubed.controllers import (
    agent_client,
    bootiso,
    bootserver,
    engine_services,
    lookup,
    memory,
)
from metalcubed.core import agent
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.provisioning import nodes

MAC = "52:54:00:00:00:11"


# --- command payloads ----------------------------------------------------------------------------


def test_prepare_image_params_round_trip() -> None:
    image = agent.ImageWrite(
        url="http://i/os.raw", checksum="ab" * 32, checksum_type="sha256", disk_format="raw",
        root_device=bmh.RootDeviceHints(device_name="/dev/sdb", rotational=False,
                                        min_size_gigabytes=20),
        config_drive=agent.ConfigDrive(user_data="u", network_data='{"links": []}',
                                       meta_data={"a": "b"}),
    )
    params = json.loads(json.dumps(agent_client.prepare_image_params(image, node_id="n1")))
    info = params["image_info"]
    assert info["urls"] == ["http://i/os.raw"] and info["stream_raw_images"] is True
    assert (info["os_hash_algo"], info["os_hash_value"]) == ("sha256", "ab" * 32)
    assert info["root_hint"] == {"name": "s== /dev/sdb", "size": ">= 20", "rotational": False}
    assert agent_client.image_of_id(info["id"]) == ("http://i/os.raw", "ab" * 32)
    assert agent_client.parse_prepare_image_params(params) == image


def test_config_drive_is_a_gzip_base64_config_2_iso() -> None:
    drive = agent.ConfigDrive(user_data="#cloud-config\n", network_data="links: []\n",
                              meta_data={"uuid": "n1", "name": "host-0"})
    text = agent_client.prepare_image_params(
        agent.ImageWrite(url="http://i/os.raw", checksum="c" * 64, config_drive=drive),
        node_id="n1")["configdrive"]
    iso = gzip.decompress(base64.b64decode(text))
    assert iso[0x8001:0x8006] == b"CD001"  # an ISO 9660 primary volume descriptor
    label, files = bootiso.read_files(iso)
    assert label == "config-2"
    assert json.loads(files["openstack/latest/meta_data.json"]) == {"uuid": "n1",
                                                                  "name": "host-0"}
    assert files["openstack/latest/user_data"] == b"#cloud-config\n"
    assert json.loads(files["openstack/latest/network_data.json"]) == {"links": []}


def test_a_bare_checksum_or_a_checksum_url_goes_as_checksum() -> None:
    for checksum in ("d" * 32, "http://i/os.raw.sha256sum"):
        info = agent_client.prepare_image_params(
            agent.ImageWrite(url="http://i/os.raw", checksum=checksum), node_id="n")["image_info"]
        assert info["checksum"] == checksum and "os_hash_algo" not in info


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"image_info": {"id": "x", "urls": []}},
        {"image_info": {"id": "x", "urls": ["http://i"], "os_hash_value": 7}},
        {"image_info": {"id": "x", "urls": ["http://i"]}},
        {"image_info": {"id": "x", "urls": ["http://i"], "checksum": "a" * 64,
                        "root_hint": {"size": ">= -1"}}},
        {"image_info": {"id": "x", "urls": ["http://i"], "checksum": "a" * 64},
         "configdrive": "not base64!"},
        {"image_info": {"id": "x", "urls": ["http://i"], "checksum": "a" * 64},
         "configdrive": base64.b64encode(gzip.compress(b"not an ISO")).decode()},
    ],
    ids=["empty", "no-url", "checksum-not-text", "no-checksum", "bad-hints", "configdrive-junk",
         "configdrive-not-iso"],
)
def test_bad_prepare_image_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        agent_client.parse_prepare_image_params(params)


# --- answers -------------------------------------------------------------------------------------

STATUS = {"started_at": 1700000000.5, "version": "13.0.0"}


def _command(name: str, status: str, **extra: object) -> dict[str, object]:
    return {"id": f"id-{name}", "command_name": name, "command_status": status,
            "command_error": None, "command_result": None, **extra}


def test_status_takes_the_latest_command_the_engine_started() -> None:
    written = agent_client.image_id("http://i/os.raw", "e" * 64)
    commands = {"commands": [
        _command("execute_clean_step", "SUCCEEDED"),
        _command("prepare_image", "SUCCEEDED", command_result={
            "result": f"prepare_image: image ({written}) written to device /dev/sda "
                      "root_uuid=None"}),
        _command("get_hardware_info", "SUCCEEDED"),  # a helper: not the agent's state
    ]}
    status = agent_client.parse_status(STATUS, commands, url="u")
    assert status.boot_id == "1700000000.5" and status.version == "13.0.0"
    assert status.command is not None
    assert status.command.name is agent.CommandName.WRITE_IMAGE
    assert (status.command.image_url, status.command.image_checksum) == ("http://i/os.raw",
                                                                         "e" * 64)


def test_failed_commands_carry_ipa_error_details() -> None:
    error = {"type": "ImageDownloadError", "code": 500, "message": "Error downloading image",
             "details": "Download of image x failed: 404"}
    status = agent_client.parse_status(STATUS, {"commands": [
        _command("prepare_image", "FAILED", command_error=error)]}, url="u")
    assert status.command is not None and status.command.state is agent.CommandState.FAILED
    assert status.command.error == "Download of image x failed: 404"
    mismatch = agent_client.parse_status(STATUS, {"commands": [
        _command("execute_clean_step", "VERSION_MISMATCH")]}, url="u")
    assert mismatch.command is not None and "version mismatch" in mismatch.command.error


@pytest.mark.parametrize(
    ("status", "commands"),
    [
        ([], {"commands": []}),
        ({"version": "v"}, {"commands": []}),
        (STATUS, {"commands": {}}),
        (STATUS, {"commands": [{"id": 1, "command_name": "prepare_image",
                                "command_status": "RUNNING"}]}),
        (STATUS, {"commands": [_command("prepare_image", "DONE")]}),
    ],
    ids=["not-object", "no-started-at", "commands-not-list", "bad-id", "unknown-status"],
)
def test_hostile_status_documents_are_agent_errors(status: object, commands: object) -> None:
    with pytest.raises(agent.AgentError) as err:
        agent_client.parse_status(status, commands, url="http://127.0.0.1:9/agents/a")
    assert "http://127.0.0.1:9/agents/a" in str(err.value) and "get status" in str(err.value)


@pytest.mark.parametrize(
    "body",
    [
        {"inventory": []},
        {"inventory": {"interfaces": [{"mac_address": "not-a-mac"}]}},
        {"inventory": {"disks": [{"size": 1}]}},
        {"inventory": {"memory": {"physical_mb": "lots"}}},
        {"inventory": {"cpu": {"flags": 7}}},
    ],
    ids=["not-object", "bad-mac", "disk-without-name", "bad-ram", "bad-flags"],
)
def test_hostile_inventories_are_agent_errors(body: object) -> None:
    with pytest.raises(agent.AgentError, match="get inventory"):
        agent_client.parse_inventory(body, url="http://127.0.0.1:9/agents/a")


def test_inventory_maps_to_hardware_details() -> None:
    details = agent_client.parse_inventory({"inventory": {
        "interfaces": [{"name": "eno1", "mac_address": "52:54:00:00:00:11", "speed_mbps": 25000,
                        "product": "0x8086 0x158b", "ipv4_address": "192.0.2.7"}],
        "cpu": {"model_name": "Xeon", "frequency": 3200, "count": 64, "architecture": "x86_64",
                "flags": ["vmx"]},
        "memory": {"physical_mb": 131072},
        "disks": [{"name": "/dev/nvme0n1", "size": 10**12, "rotational": False,
                   "by_path": "/dev/disk/by-path/pci-0000:01:00.0-nvme-1"}],
        "system_vendor": {"manufacturer": "M3", "product_name": "P", "serial_number": "S",
                          "firmware": {"vendor": "F", "version": "1", "build_date": "d"}},
        "boot": {"pxe_interface": "52:54:00:00:00:11"},
        "hostname": "h",
    }}, url="u")
    assert details.nics[0].pxe and details.nics[0].speed_gbps == 25
    assert details.nics[0].ip == "192.0.2.7"
    disk = details.storage[0]
    assert disk.name.startswith("/dev/disk/by-path/") and disk.alternate_names == ("/dev/nvme0n1",)
    assert disk.type is not None and disk.type.value == "NVME"
    assert details.cpu.count == 64 and details.ram_mebibytes == 131072
    assert details.firmware.bios.version == "1" and details.hostname == "h"


# --- node table tokens ---------------------------------------------------------------------------


@pytest.fixture
def table() -> lookup.LockedNodeTable:
    clock = memory.WallClock()
    table = lookup.LockedNodeTable(clock=clock, agent_timeout_s=60)
    # As the engine leaves it once it booted the ramdisk to deploy.
    table.put(nodes.Node(node_id="n1", name="ns~n1", bmc_address="127.0.0.1:623", macs=(MAC,),
                         wait=nodes.Wait(purpose=nodes.Purpose.DEPLOY, since=clock.now())))
    return table


def test_no_token_for_a_node_that_boots_no_ramdisk(table: lookup.LockedNodeTable) -> None:
    """A process that knows a MAC gets nothing while the engine expects no agent there."""
    node = table.get("n1")
    assert node is not None
    table.put(dataclasses.replace(node, wait=None))
    assert table.lookup_with_token([MAC]) is None
    table.put(dataclasses.replace(node, wait=nodes.Wait(purpose=nodes.Purpose.SOFT_POWER_OFF,
                                                        since=node.wait.since if node.wait
                                                        else memory.WallClock().now())))
    assert table.lookup_with_token([MAC]) is None
    table.put(node)
    assert table.lookup_with_token([MAC]) is not None


def test_a_token_is_handed_out_once_until_the_engine_boots_the_ramdisk_again(
        table: lookup.LockedNodeTable) -> None:
    first = table.lookup_with_token([MAC.upper()])
    assert first is not None and first[0] == "n1" and len(first[1]) >= 32
    assert table.lookup_with_token([MAC]) == ("n1", lookup.HIDDEN_TOKEN)
    assert table.heartbeat_with_token("n1", first[1], url="http://127.0.0.1:9999") == "ok"
    endpoint = table.agent("n1")
    assert endpoint is not None and endpoint.token == first[1]
    assert first[1] not in repr(endpoint)  # tokens stay out of logs and reprs
    table.forget_agent("n1")
    assert table.agent("n1") is None
    second = table.lookup_with_token([MAC])
    assert second is not None and second[1] not in (first[1], lookup.HIDDEN_TOKEN)


def test_a_pregenerated_token_replaces_the_old_one(table: lookup.LockedNodeTable) -> None:
    handed = table.lookup_with_token([MAC])
    assert handed is not None
    iso_token = table.pregenerate_token("n1")
    assert iso_token is not None and iso_token != handed[1]
    assert table.lookup_with_token([MAC]) == ("n1", lookup.HIDDEN_TOKEN)
    assert table.heartbeat_with_token("n1", handed[1], url="http://h:1") == "token"
    assert table.heartbeat_with_token("n1", iso_token, url="http://h:1") == "ok"
    assert table.pregenerate_token("unknown") is None


# --- the Ironic API over HTTP --------------------------------------------------------------------


@pytest.fixture
def api(table: lookup.LockedNodeTable) -> Iterator[lookup.IronicApi]:
    server = lookup.IronicApi(table, heartbeat_timeout_s=45)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as rsp:
            return rsp.status, json.loads(rsp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as rsp:
            raw = rsp.read()
            return rsp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_version_documents_offer_agent_tokens(api: lookup.IronicApi) -> None:
    status, root = _get(api.url + "/")
    assert status == 200
    default = root["default_version"]
    assert isinstance(default, dict) and default["version"] == "1.67"
    status, v1 = _get(api.url + "/v1/")
    assert status == 200 and v1["id"] == "v1"


def test_lookup_and_heartbeat_over_http(api: lookup.IronicApi,
                                        table: lookup.LockedNodeTable) -> None:
    status, missing = _get(api.url + "/v1/lookup?addresses=00:00:00:00:00:01")
    assert status == 404 and "faultstring" in str(missing["error_message"])
    status, found = _get(f"{api.url}/v1/lookup?addresses=00:00:00:00:00:01,{MAC}")
    assert status == 200
    config = found["config"]
    assert isinstance(config, dict) and config["heartbeat_timeout"] == 45
    token = config["agent_token"]
    assert isinstance(token, str) and len(token) >= 32
    _, again = _get(f"{api.url}/v1/lookup?addresses={MAC}")
    assert isinstance(again["config"], dict) and again["config"]["agent_token"] == "******"
    beat = json.dumps({"callback_url": "http://127.0.0.1:9999", "agent_token": token,
                       "agent_version": "13.0.0"}).encode()
    assert _post(api.url + "/v1/heartbeat/n1", beat)[0] == 202
    endpoint = table.agent("n1")
    assert endpoint is not None and endpoint.url == "http://127.0.0.1:9999"


def test_a_wrong_token_is_refused_and_not_logged(
        api: lookup.IronicApi, table: lookup.LockedNodeTable,
        caplog: pytest.LogCaptureFixture) -> None:
    found = table.lookup_with_token([MAC])
    assert found is not None
    wrong = "w" * 43
    caplog.set_level(logging.DEBUG)
    for token in (wrong, None):
        body = json.dumps({"callback_url": "http://127.0.0.1:9999", "agent_token": token})
        status, doc = _post(api.url + "/v1/heartbeat/n1", body.encode())
        assert status == 401
        assert doc["error_message"] == {"faultstring": "Invalid or missing agent token received.",
                                        "faultcode": "Client", "debuginfo": None}
    assert table.agent("n1") is None and api.refused == 2
    assert "refused heartbeat for node n1" in caplog.text
    assert wrong not in caplog.text and found[1] not in caplog.text


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"callback_url": "file:///etc/passwd"}', b'{"callback_url": 3}'],
    ids=["not-json", "not-object", "not-http", "not-text"],
)
def test_garbage_heartbeats_are_refused(api: lookup.IronicApi, body: bytes) -> None:
    status, doc = _post(api.url + "/v1/heartbeat/n1", body)
    assert status == 400 and "faultstring" in str(doc["error_message"])


def test_continue_inspection_stores_the_inventory(api: lookup.IronicApi,
                                                  table: lookup.LockedNodeTable) -> None:
    body = {"inventory": {"interfaces": [{"name": "eth0", "mac_address": MAC}]}, "error": None}
    status, doc = _post(api.url + "/v1/continue_inspection", json.dumps(body).encode())
    assert status == 202 and doc == {"uuid": "n1"}
    assert table.inspection("n1") == body
    assert _post(api.url + "/v1/continue_inspection", b'{"inventory": 7}')[0] == 400


# --- boot server and ISOs ------------------------------------------------------------------------


def test_deploy_iso_carries_the_api_url_and_a_token_for_the_boot(
        table: lookup.LockedNodeTable) -> None:
    files = {"http://files/k": b"kernel", "http://files/r": b"ramdisk"}
    boot = bootserver.BootServer(table=table, deploy_kernel_url="http://files/k",
                                 deploy_ramdisk_url="http://files/r",
                                 api_url="http://192.0.2.1:6385", fetch=lambda u: [files[u]])
    boot.start()
    try:
        template = boot.deploy_iso_url_template()
        assert template == f"{boot.url}/boot/{boot.key}/{{node_id}}/deploy.iso"
        assert len(boot.key) >= 16
        status, _ = _get(f"{boot.url}/boot/n1/deploy.iso")  # without the key: nothing
        assert status == 404 and table.agent_token("n1") is None
        with urllib.request.urlopen(template.replace("{node_id}", "n1"), timeout=5) as rsp:
            iso = rsp.read()
        params = bootiso.read_agent_params(iso)
        assert params["ipa-api-url"] == "http://192.0.2.1:6385"
        assert params["boot_method"] == "vmedia"
        assert table.token_valid("n1", params["ipa-agent-token"])
        _, contents = bootiso.read_files(iso)
        assert contents["vmlinuz"] == b"kernel" and contents["initrd"] == b"ramdisk"
        status, doc = _get(template.replace("{node_id}", "unknown"))
        assert status == 404 and "not registered" in str(doc["error"])
        with urllib.request.urlopen(f"{boot.url}/boot/{boot.key}/n1/parameters.img",
                                    timeout=5) as rsp:
            floppy = rsp.read()
        assert bootiso.read_files(floppy)[0] == "ir-vfd-dev"
        # One boot, one token: every image of this boot carries the same one.
        assert bootiso.read_agent_params(floppy)["ipa-agent-token"] == params["ipa-agent-token"]

        # The BMC reads the ISO piecewise while the host boots: the same bytes every time.
        url = template.replace("{node_id}", "n1")
        with urllib.request.urlopen(url, timeout=5) as rsp:
            assert rsp.read() == iso and rsp.headers["Accept-Ranges"] == "bytes"
        ranged = urllib.request.Request(url, headers={"Range": "bytes=32768-34815"})
        with urllib.request.urlopen(ranged, timeout=5) as rsp:
            assert rsp.status == 206 and rsp.read() == iso[32768:34816]
            assert rsp.headers["Content-Range"] == f"bytes 32768-34815/{len(iso)}"
        tail = urllib.request.Request(url, headers={"Range": "bytes=-100"})
        with urllib.request.urlopen(tail, timeout=5) as rsp:
            assert rsp.read() == iso[-100:]
        beyond = urllib.request.Request(url, headers={"Range": f"bytes={len(iso)}-"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(beyond, timeout=5)
        assert refused.value.code == 416
        assert boot.isos_built == 1

        # The engine boots the ramdisk again: a new token, a new ISO.
        table.forget_agent("n1")
        with urllib.request.urlopen(url, timeout=5) as rsp:
            again = bootiso.read_agent_params(rsp.read())["ipa-agent-token"]
        assert again != params["ipa-agent-token"] and table.token_valid("n1", again)
        assert boot.isos_built == 2
    finally:
        boot.stop()


def test_a_deploy_iso_whose_ramdisk_cannot_be_fetched_names_it(
        table: lookup.LockedNodeTable) -> None:
    def fetch(url: str) -> bytes:
        raise bootserver.FetchError(f"GET {url}: HTTP 404")

    boot = bootserver.BootServer(table=table, deploy_kernel_url="http://files/k",
                                 deploy_ramdisk_url="http://files/r", fetch=fetch)
    boot.start()
    try:
        status, doc = _get(f"{boot.url}/boot/{boot.key}/n1/deploy.iso")
        assert status == 424 and "http://files/k: HTTP 404" in str(doc["error"])
        found = table.lookup_with_token([MAC])
        assert found is not None and found[1] != lookup.HIDDEN_TOKEN  # none pre-generated
    finally:
        boot.stop()


def test_agent_parameters_with_white_space_cannot_be_built() -> None:
    with pytest.raises(bootiso.IsoError, match="white space"):
        bootiso.parameters_image({"ipa-api-url": "http://a b"})
    with pytest.raises(bootiso.IsoError, match="not a readable ISO"):
        bootiso.read_agent_params(b"\0" * 4096)


def test_a_deploy_iso_with_an_esp_boots_on_uefi() -> None:
    """Given an EFI system partition image, the ISO's El Torito catalog boots it (platform
    0xEF, no emulation), as Ironic's per-node ISOs do."""
    esp = b"\xeb\x3c\x90mkfs.fat" + b"\0" * (2048 * 8 - 11)
    iso = bootiso.deploy_iso(kernel=b"k", ramdisk=b"r", params={"ipa-api-url": "http://a:1"},
                             esp=esp)
    reader = pycdlib.PyCdlib()
    reader.open_fp(io.BytesIO(iso))
    try:
        catalog = reader.eltorito_boot_catalog
        assert catalog is not None
        assert catalog.validation_entry.platform_id == 0xEF
        out = io.BytesIO()
        reader.get_file_from_iso_fp(out, rr_path="/boot/efiboot.img")
        assert out.getvalue() == esp
    finally:
        reader.close()
    assert bootiso.read_agent_params(iso)["ipa-api-url"] == "http://a:1"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"deploy_kernel_url": "http://i/k"},
         "DEPLOY_KERNEL_URL is set but DEPLOY_RAMDISK_URL is not"),
        ({"deploy_ramdisk_url": "http://i/r"},
         "DEPLOY_RAMDISK_URL is set but DEPLOY_KERNEL_URL is not"),
        ({"deploy_iso_url": "ftp://i/ipa.iso"}, "DEPLOY_ISO_URL must be an http(s) URL"),
        ({"deploy_bootloader_url": "http://i/esp.img"}, "used only with DEPLOY_KERNEL_URL"),
    ],
    ids=["kernel-only", "ramdisk-only", "iso-not-http", "bootloader-alone"],
)
def test_deploy_image_settings_that_do_not_fit_name_the_variable(
        settings: dict[str, str], message: str) -> None:
    def no_bmc(access: object) -> None:
        raise AssertionError("no BMC is driven")

    with pytest.raises(ValueError, match=re.escape(message)):
        engine_services.EngineServices(
            clock=memory.WallClock(), drivers=no_bmc,  # type: ignore[arg-type]
            store_hosts=None, config=engine_services.EngineServiceConfig(**settings))
