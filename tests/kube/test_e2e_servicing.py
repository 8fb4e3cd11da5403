"""Servicing end to end as deployed: a real kube-apiserver, `metalcubed manager --provisioner
engine` as a subprocess, an emulated server behind a sushy-tools Redfish BMC (its firmware
updates fetched over HTTP from a loopback image server).

A provisioned host gets a HostFirmwareSettings change and a firmware update, written as a user
writes them (kubectl-style patches of the objects the manager created at registration, and a
HostUpdatePolicy allowing both on reboot); the reboot annotation triggers servicing. Checked on
the API (operationalStatus servicing and back to OK, HostFirmwareSettings status and conditions,
HostFirmwareComponents versions, the host still provisioned with its image) and on the
hardware's own record (BIOS value, firmware version, the disk written once and never wiped).
Then an update whose URL is 404 ends in `servicing error` on the host; the user removes it from
the spec and reboots, which aborts the failed servicing and brings the host back to OK and on:
never stuck in servicing.

Every write of the host during a reboot is read from a watch (none is missed, however short),
so the checks are on the order of what the host showed, not on what a poll happened to catch.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from metalcubed.controllers.kube import localcluster
from metalcubed.core.reconcilers import servicing
from metalcubed.simulators import firmwareimage
from metalcubed.simulators.devenv import config as lab_config
from tests.kube import test_e2e_engine_support as support
from tests.kube import test_e2e_support as e2e

pytestmark = [pytest.mark.hardware, pytest.mark.slow]

TIMEOUT_S = servicing.SUBRESOURCE_NOT_READY_RETRY_DELAY_S + 120.0
"""Liveness bound per step, not a timing claim: the longest wait the product itself schedules
in this test is upstream's 60 s (after servicing the host controller looks again, and powers the
host on, 60 s later; the settings controller re-reads every 60 s while a change is pending); the
rest is margin for a loaded CI machine."""
REBOOT = "reboot.metal3.io"


def _objects(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


def _get(api: k8s.ApiClient, ns: str, plural: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = _objects(api).get_namespaced_custom_object(
        e2e.GROUP, e2e.VERSION, ns, plural, name)
    return found


def _patch(api: k8s.ApiClient, ns: str, plural: str, name: str, patch: dict[str, Any]) -> None:
    _objects(api).patch_namespaced_custom_object(e2e.GROUP, e2e.VERSION, ns, plural, name, patch)


def _conditions(obj: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {c["type"]: (c["status"], c.get("observedGeneration", 0))
            for c in (obj.get("status") or {}).get("conditions") or []}


def _change_seen(api: k8s.ApiClient, ns: str, plural: str, name: str) -> Callable[[], bool]:
    """Its controller has seen this generation and found a valid change to apply."""
    def seen() -> bool:
        obj = _get(api, ns, plural, name)
        generation = obj["metadata"]["generation"]
        found = _conditions(obj)
        return (found.get("ChangeDetected") == ("True", generation)
                and found.get("Valid") == ("True", generation))
    return seen


def _caught_up(api: k8s.ApiClient, ns: str, plural: str, name: str) -> Callable[[], bool]:
    """Its controller has seen this generation and found no change to apply."""
    def seen() -> bool:
        obj = _get(api, ns, plural, name)
        generation = obj["metadata"]["generation"]
        found = _conditions(obj)
        return (found.get("ChangeDetected") == ("False", generation)
                and found.get("Valid") == ("True", generation))
    return seen


def _status(api: k8s.ApiClient, ns: str, name: str) -> dict[str, Any]:
    return e2e.get_host(api, ns, name).get("status") or {}


@dataclass(frozen=True)
class Write:
    """What one write of the host showed."""

    annotated: bool
    powered_on: bool
    status: str
    error_type: str

    def __str__(self) -> str:
        return (f"{'R' if self.annotated else '-'}/{'on' if self.powered_on else 'off'}/"
                f"{self.status}{'/' + self.error_type if self.error_type else ''}")


def _write(host: dict[str, Any]) -> Write:
    status = host.get("status") or {}
    return Write(REBOOT in (host["metadata"].get("annotations") or {}),
                 status.get("poweredOn") is True, status.get("operationalStatus", ""),
                 status.get("errorType", ""))


def _reboot_and_watch(api: k8s.ApiClient, ns: str, name: str,
                      done: Callable[[list[Write]], bool]) -> list[Write]:
    """Add the reboot annotation and return every write of the host from then on, in order,
    once `done(writes)` holds (a watch from the version before the annotation: nothing is
    missed)."""
    since = e2e.get_host(api, ns, name)["metadata"]["resourceVersion"]
    e2e.patch_host(api, ns, name, {"metadata": {"annotations": {REBOOT: ""}}})
    writes: list[Write] = []
    deadline = time.monotonic() + TIMEOUT_S
    watch = k8s_watch.Watch()
    try:
        while (left := deadline - time.monotonic()) > 0:
            for event in watch.stream(
                _objects(api).list_namespaced_custom_object, e2e.GROUP, e2e.VERSION, ns,
                e2e.PLURAL, field_selector=f"metadata.name={name}", resource_version=since,
                timeout_seconds=max(1, int(left)),
            ):
                host = event["object"]
                since = host["metadata"]["resourceVersion"]
                writes.append(_write(host))
                if done(writes):
                    return writes
    finally:
        watch.stop()
    raise AssertionError(f"host {name} did not get there in {TIMEOUT_S} s; writes: "
                         + " ".join(map(str, writes)))


def _back_on(writes: list[Write]) -> bool:
    """The reboot is over: the last write shows the annotation gone, the host on and OK."""
    return bool(writes) and str(writes[-1]) == "-/on/OK"


def _show(writes: list[Write]) -> str:
    return " ".join(map(str, writes))


def test_a_firmware_change_to_a_provisioned_host_is_serviced(
    kube_cluster: localcluster.Cluster, kube_api: k8s.ApiClient, kube_namespace: str,
    tmp_path: Path,
) -> None:
    missing = support.missing_engine_mode()
    if missing is not None:
        pytest.fail(missing, pytrace=False)
    ns, api = kube_namespace, kube_api
    images = support.Images().start()
    bios_url = images.server.add(firmwareimage.file_name("bios", "2.2.0"),
                                 firmwareimage.make("bios", "2.2.0", padding=4096))
    gone_url = bios_url.rsplit("/", 1)[0] + "/" + firmwareimage.file_name("bios", "9.9.9")
    manager = support.EngineManager(
        kube_cluster.kubeconfig, ns, tmp_path / "manager.log",
        ("--engine-poll-seconds", "1", "--engine-short-poll-seconds", "0.5",
         "--ramdisk-timeout-seconds", "3600"),
        images.env(),
    )
    shard_log = (tmp_path / "bmcs.log").open("w")
    shards = support.BmcShards(hosts=1, processes=1, lookup_url=manager.agent_url,
                               deploy_iso_url="", deploy_iso_prefix=f"{manager.boot_url}/boot/",
                               log=shard_log, mix=lab_config.BmcMix.REDFISH, prefix="svc")
    try:
        shards.start()
        (info,) = shards.infos
        name = info.name
        manager.start().wait_ready(timeout_s=60)
        support.enroll(api, ns, [info])
        support.wait(lambda: support.states(api, ns).get(name) == "available",
                     timeout_s=TIMEOUT_S, what="host available")
        e2e.patch_host(api, ns, name, {"spec": {"image": images.spec()}})
        support.wait(lambda: support.states(api, ns).get(name) == "provisioned"
                     and shards.disks()[name]["os_boots"] >= 1,
                     timeout_s=TIMEOUT_S, what="host provisioned and booted from its disk")

        # --- what registration created, as upstream: HFS and HFC owned by the host -----------
        hfs = _get(api, ns, "hostfirmwaresettings", name)
        assert [o["kind"] for o in hfs["metadata"]["ownerReferences"]] == ["BareMetalHost"]
        support.wait(lambda: (_get(api, ns, "hostfirmwaresettings", name).get("status") or {})
                     .get("settings", {}).get("ProcVirtualization") == "Enabled",
                     timeout_s=TIMEOUT_S, what="BIOS settings read into HostFirmwareSettings")
        schema_ref = _get(api, ns, "hostfirmwaresettings", name)["status"]["schema"]
        schema = _get(api, ns, "firmwareschemas", schema_ref["name"])
        assert schema["spec"]["schema"]["ProcVirtualization"]["attribute_type"] == "Enumeration"
        support.wait(lambda: {c["component"]: c.get("currentVersion") for c in (
            _get(api, ns, "hostfirmwarecomponents", name).get("status") or {})
            .get("components", [])}.get("bios") == "2.1.7",
            timeout_s=TIMEOUT_S, what="firmware inventory in HostFirmwareComponents")
        disk_before = shards.disks()[name]

        # --- the user's change: a policy, a setting, an update; then a reboot ---------------
        _objects(api).create_namespaced_custom_object(e2e.GROUP, e2e.VERSION, ns,
                                                      "hostupdatepolicies", {
            "apiVersion": "metal3.io/v1alpha1", "kind": "HostUpdatePolicy",
            "metadata": {"name": name},
            "spec": {"firmwareSettings": "onReboot", "firmwareUpdates": "onReboot"}})
        _patch(api, ns, "hostfirmwaresettings", name,
               {"spec": {"settings": {"ProcVirtualization": "Disabled"}}})
        _patch(api, ns, "hostfirmwarecomponents", name,
               {"spec": {"updates": [{"component": "bios", "url": bios_url}]}})
        support.wait(_change_seen(api, ns, "hostfirmwaresettings", name), timeout_s=TIMEOUT_S,
                     what="HostFirmwareSettings change detected and valid")
        support.wait(_change_seen(api, ns, "hostfirmwarecomponents", name), timeout_s=TIMEOUT_S,
                     what="HostFirmwareComponents change detected and valid")
        writes = _reboot_and_watch(api, ns, name, _back_on)
        # Seen off before the annotation went, then servicing, and only then back on and OK.
        gone = next(i for i, w in enumerate(writes) if not w.annotated)
        assert not writes[gone].powered_on, _show(writes)
        serviced = [i for i, w in enumerate(writes) if w.status == "servicing"]
        assert serviced and serviced[0] >= gone, _show(writes)
        assert all(str(w) != "-/on/OK" for w in writes[:serviced[0]]), _show(writes)
        status = _status(api, ns, name)
        assert status["provisioning"]["state"] == "provisioned"
        assert status["provisioning"]["image"]["url"] == images.os_url
        assert not status.get("errorType"), status
        disk = shards.disks()[name]
        assert disk["bios"]["ProcVirtualization"] == "Disabled"
        assert disk["firmware"]["bios"] == "2.2.0"
        assert (disk["writes"], disk["wipes"], disk["image_url"]) == (
            disk_before["writes"], 0, images.os_url), disk
        # Events are sent after the status write, by the recorder's own threads.
        support.wait(lambda: "ServicingComplete" in [e["reason"]
                                                     for e in e2e.events_for(api, ns, name)],
                     timeout_s=TIMEOUT_S, what="the ServicingComplete Event")
        hfc = _get(api, ns, "hostfirmwarecomponents", name)
        assert hfc["status"]["updates"] == [{"component": "bios", "url": bios_url}]

        # --- an update that cannot be fetched: a servicing error, then backed out ---------------
        _patch(api, ns, "hostfirmwarecomponents", name,
               {"spec": {"updates": [{"component": "bios", "url": gone_url}]}})
        support.wait(_change_seen(api, ns, "hostfirmwarecomponents", name), timeout_s=TIMEOUT_S,
                     what="the 404 update detected")
        writes = _reboot_and_watch(api, ns, name,
                                   lambda ws: ws[-1].error_type == "servicing error")
        assert "servicing" in [w.status for w in writes], _show(writes)
        status = _status(api, ns, name)
        assert status["operationalStatus"] == "error"
        assert gone_url in status["errorMessage"], status["errorMessage"]
        assert status["provisioning"]["state"] == "provisioned"
        assert shards.disks()[name]["wipes"] == 0
        # The user backs the update out and reboots: the failed servicing is aborted.
        _patch(api, ns, "hostfirmwarecomponents", name, {"spec": {"updates": []}})
        support.wait(_caught_up(api, ns, "hostfirmwarecomponents", name), timeout_s=TIMEOUT_S,
                     what="the emptied updates seen by their controller")
        writes = _reboot_and_watch(api, ns, name, _back_on)
        assert "servicing" in [w.status for w in writes], _show(writes)
        # The settings controller shows the new BIOS value at its next read (it re-reads every
        # 60 s while a change is pending): checked last, so that wait overlaps the rest.
        support.wait(lambda: (_get(api, ns, "hostfirmwaresettings", name)["status"]["settings"]
                              ["ProcVirtualization"] == "Disabled"
                              and _conditions(_get(api, ns, "hostfirmwaresettings", name))
                              ["ChangeDetected"][0] == "False"),
                     timeout_s=TIMEOUT_S, what="HostFirmwareSettings status shows the new value")
        final = shards.disks()[name]
        assert (final["writes"], final["wipes"], final["image_url"]) == (
            disk_before["writes"], 0, images.os_url), final
        assert final["firmware"]["bios"] == "2.2.0"
    finally:
        support.stop_quietly(manager.terminate, shards.stop, images.stop, shard_log.close)
