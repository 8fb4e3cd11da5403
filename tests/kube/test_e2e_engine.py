"""End to end as deployed: a real kube-apiserver, `metalcubed manager --provisioner engine` as a
subprocess, emulated Redfish and IPMI BMCs with deploy agents in processes of their own.

20 servers (Redfish virtual media, IPMI PXE, Redfish PXE) go enroll -> available ->
provisioned -> deprovisioned -> deleted. Mid-provisioning the manager is killed with SIGKILL
and a new one started on the same agent API and boot server ports; its node table (the
engine's records and the agents' tokens) starts empty, and it must rebuild what it needs from
the BareMetalHosts and the hardware. Mid-deprovisioning (some hosts switched off beforehand)
that one is killed too, and a third finishes.

What is checked comes from the hardware's own record (each emulated disk counts the images
written to it and the wipes; each server lists its boots), not only from the controller's
status:

- every host converges to each state, with no error;
- no host is imaged twice after it reached `provisioned` (a restart adopts it, never redeploys
  it), and a host caught mid-deployment is deployed again at most once, not left waiting;
- the image on every disk is the one asked for (URL and sha256);
- deprovisioning wiped every disk, also of the hosts that were off; deletion left every
  server off with its virtual CD empty and no agent running, and no BareMetalHost or
  HardwareData behind.
"""

import collections
from pathlib import Path

import pytest
from kubernetes import client as k8s

from metalcubed.controllers.kube import localcluster
from tests.kube import test_e2e_engine_support as support
from tests.kube import test_e2e_support as e2e

pytestmark = [pytest.mark.hardware, pytest.mark.slow]

HOSTS = 20
PHASE_TIMEOUT_S = 300.0
"""Liveness bound per phase (a failure says which hosts are stuck where); not a speed claim."""


def _counts(found: dict[str, str]) -> collections.Counter[str]:
    return collections.Counter(found.values())


def _stuck(found: dict[str, str], wanted: str) -> dict[str, str]:
    return {name: state for name, state in sorted(found.items()) if state != wanted}


def _wait_all(api: k8s.ApiClient, ns: str, wanted: str, what: str) -> None:
    """Until every host shows `wanted` with no error (states() appends any errorType)."""
    last: dict[str, str] = {}

    def done() -> bool:
        nonlocal last
        last = support.states(api, ns)
        return len(last) == HOSTS and all(state == wanted for state in last.values())

    try:
        support.wait(done, timeout_s=PHASE_TIMEOUT_S, what=what, interval_s=0.5)
    except AssertionError as err:
        raise AssertionError(f"{err}; hosts not {wanted}: {_stuck(last, wanted)}") from None


def _manager(cluster: localcluster.Cluster, ns: str, log: Path, images: support.Images,
             ports_of: "support.EngineManager | None" = None) -> support.EngineManager:
    mgr = support.EngineManager(
        cluster.kubeconfig, ns, log,
        ("--concurrency", "8", "--engine-poll-seconds", "2", "--engine-short-poll-seconds", "1",
         # far beyond the test's waits: a host that converges did not wait for a timeout
         "--ramdisk-timeout-seconds", "3600"),
        {**images.env(), "PROVISIONING_LIMIT": str(HOSTS)},
    )
    if ports_of is not None:  # a restart: hosts and agents know these URLs
        mgr.agent_port, mgr.boot_port = ports_of.agent_port, ports_of.boot_port
    return mgr


def test_engine_as_deployed_survives_kill_9_mid_provisioning(
    kube_cluster: localcluster.Cluster, kube_api: k8s.ApiClient, kube_namespace: str,
    tmp_path: Path,
) -> None:
    missing = support.missing_engine_mode()
    if missing is not None:
        pytest.fail(missing, pytrace=False)
    ns = kube_namespace
    images = support.Images().start()
    first = _manager(kube_cluster, ns, tmp_path / "manager-1.log", images)
    second = _manager(kube_cluster, ns, tmp_path / "manager-2.log", images, ports_of=first)
    third = _manager(kube_cluster, ns, tmp_path / "manager-3.log", images, ports_of=first)
    shard_log = (tmp_path / "bmcs.log").open("w")
    shards = support.BmcShards(hosts=HOSTS, lookup_url=first.agent_url,
                               deploy_iso_url="",  # the manager builds one per host
                               deploy_iso_prefix=f"{first.boot_url}/boot/", log=shard_log)
    try:
        shards.start()
        infos = shards.infos
        assert {i.scheme for i in infos} == {"redfish-virtualmedia", "redfish", "ipmi"}
        first.start().wait_ready(timeout_s=60)

        # --- enroll -> available (registration, inspection by the agent) -------------------
        support.enroll(kube_api, ns, infos)
        _wait_all(kube_api, ns, "available", "every host available")
        hardware = k8s.CustomObjectsApi(kube_api).list_namespaced_custom_object(
            e2e.GROUP, e2e.VERSION, ns, "hardwaredata")["items"]
        assert sorted(d["metadata"]["name"] for d in hardware) == sorted(i.name for i in infos)
        before = shards.disks()
        assert all(d["writes"] == 0 for d in before.values()), before

        # --- provision, with kill -9 of the manager mid-way -----------------------------------
        # Half the hosts first, so that the kill finds hosts provisioned and hosts mid-way.
        early, late = infos[: HOSTS // 2], infos[HOSTS // 2:]
        for info in early:
            e2e.patch_host(kube_api, ns, info.name, {"spec": {"image": images.spec()}})
        support.wait(lambda: all(support.states(kube_api, ns)[i.name] == "provisioned"
                                 for i in early),
                     timeout_s=PHASE_TIMEOUT_S, what="the first half provisioned")
        for info in late:
            e2e.patch_host(kube_api, ns, info.name, {"spec": {"image": images.spec()}})

        def mid_provisioning() -> bool:
            # Every late host deploying, and at least one whose image is on its disk while its
            # BareMetalHost does not say provisioned yet (the agent wrote it; the manager has
            # not rebooted it into the disk).
            found = support.states(kube_api, ns)
            if any(found[i.name] != "provisioning" for i in late):
                return False
            disks = shards.disks()
            return any(disks[i.name]["writes"] >= 1 for i in late)

        support.wait(mid_provisioning, timeout_s=PHASE_TIMEOUT_S, interval_s=0.1,
                     what="the second half mid-deployment, one image written")
        first.kill()
        killed_at = support.states(kube_api, ns)
        disks_at_kill = shards.disks()
        done_before = sorted(n for n, s in killed_at.items() if s == "provisioned")
        caught = sorted(n for n, s in killed_at.items() if s == "provisioning")
        assert done_before and caught, killed_at
        for name in done_before:
            assert disks_at_kill[name]["writes"] == 1, (name, disks_at_kill[name])
        written = [n for n in caught if disks_at_kill[n]["writes"] >= 1]
        assert written, disks_at_kill

        second.start().wait_ready(timeout_s=60)
        _wait_all(kube_api, ns, "provisioned",
                  f"every host provisioned after the restart (killed at {_counts(killed_at)})")
        # `provisioned` comes with the reboot into the disk; the boot itself follows.
        support.wait(lambda: all(d["os_boots"] >= 1 for d in shards.disks().values()),
                     timeout_s=60, what="every host booted its OS from its disk")
        provisioned = shards.disks()
        for name, disk in sorted(provisioned.items()):
            assert (disk["image_url"], disk["checksum"]) == (images.os_url, images.os_checksum)
            if name in done_before:
                assert disk["writes"] == 1, f"{name} was provisioned before the kill and " \
                    f"was imaged again after the restart: {disk}"
            else:
                assert 1 <= disk["writes"] <= 2, (name, disk)
                # Its agent's token died with the old manager: booted into the ramdisk again.
                ramdisk = ("Pxe", "Cd")
                assert (sum(b in ramdisk for b in disk["boots"])
                        > sum(b in ramdisk for b in disks_at_kill[name]["boots"])), (name, disk)
        rewritten = sorted(n for n, d in provisioned.items() if d["writes"] > 1)

        # --- deprovision -> available, with a second kill -9 mid-way -------------------------
        # Some hosts are switched off first (a provisioned pool kept off): their disks must be
        # wiped too, also when the manager that deprovisions them never saw them deployed.
        offline = [i.name for i in infos[::5]]
        for name in offline:
            e2e.patch_host(kube_api, ns, name, {"spec": {"online": False}})
        support.wait(lambda: all(shards.disks()[n]["power"] == "Off" for n in offline)
                     and all(not (e2e.get_host(kube_api, ns, n).get("status") or {})
                             .get("poweredOn") for n in offline),
                     timeout_s=PHASE_TIMEOUT_S, what="the offline hosts powered off")
        for info in infos:
            e2e.patch_host(kube_api, ns, info.name, {"spec": {"image": None}})

        def mid_deprovisioning() -> bool:
            found = support.states(kube_api, ns)
            return (_counts(found)["deprovisioning"] >= 2
                    and any(d["wipes"] >= 1 for d in shards.disks().values()))

        support.wait(mid_deprovisioning, timeout_s=PHASE_TIMEOUT_S, interval_s=0.1,
                     what="hosts mid-deprovisioning, one disk wiped")
        second.kill()
        killed_again_at = support.states(kube_api, ns)
        assert _counts(killed_again_at)["deprovisioning"] >= 1, killed_again_at
        third.start().wait_ready(timeout_s=60)
        _wait_all(kube_api, ns, "available", "every host deprovisioned after the second restart "
                  f"(killed at {_counts(killed_again_at)})")
        deprovisioned = shards.disks()
        for name, disk in sorted(deprovisioned.items()):
            assert disk["wipes"] >= 1 and disk["image_url"] == "", (name, disk)
            assert disk["writes"] == provisioned[name]["writes"], (name, disk)
        for name in offline:
            assert deprovisioned[name]["power"] == "Off", (name, deprovisioned[name])

        # --- delete: nothing left behind -------------------------------------------------
        for info in infos:
            e2e.hosts_api(kube_api).delete_namespaced_custom_object(
                e2e.GROUP, e2e.VERSION, ns, e2e.PLURAL, info.name)
        support.wait(lambda: not e2e.list_hosts(kube_api, ns), timeout_s=PHASE_TIMEOUT_S,
                     interval_s=0.5, what="every host deleted")
        # The objects a host owns (HardwareData, HostFirmwareSettings/Components) go by garbage
        # collection, which runs after the host is gone: wait for it, then nothing is left.
        owned = ("hardwaredata", "hostfirmwaresettings", "hostfirmwarecomponents")

        def left_behind() -> dict[str, list[str]]:
            found = {plural: [o["metadata"]["name"] for o in k8s.CustomObjectsApi(kube_api)
                              .list_namespaced_custom_object(e2e.GROUP, e2e.VERSION, ns,
                                                             plural)["items"]]
                     for plural in owned}
            return {plural: names for plural, names in found.items() if names}

        support.wait(lambda: not left_behind(), timeout_s=PHASE_TIMEOUT_S, interval_s=0.5,
                     what="the hosts' HardwareData and firmware objects garbage-collected")
        assert left_behind() == {}
        final = shards.disks()
        for name, disk in sorted(final.items()):
            assert disk["power"] == "Off" and not disk["media_inserted"], (name, disk)
            assert not disk["agent"], (name, disk)
        assert third.alive(), third.log()
        print(f"kill -9 at {dict(_counts(killed_at))}; re-imaged after the restart "
              f"(caught mid-deployment): {rewritten}; second kill -9 at "
              f"{dict(_counts(killed_again_at))}")
    except AssertionError as err:
        running = next(m for m in (third, second, first) if m.proc is not None)
        raise AssertionError(f"{err}\n--- {running.log_path.name} (tail) ---\n{running.log()}"
                             ) from None
    finally:
        support.stop_quietly(first.kill, second.kill, third.kill, shards.stop, images.stop,
                             shard_log.close)
    assert not first.alive() and not second.alive() and not third.alive()
    assert all(c._proc is not None and c._proc.poll() is not None for c in shards.children)
