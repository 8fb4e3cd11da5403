"""The Helm chart without an API server: lint, render each values combination, refuse
contradictions naming the value, stay equal to the kustomize manifests (one source), and keep
the README's firewall table true to the ports the chart opens.

With a real helm (Helm 4 and Helm 3, built from the Go module proxy; tests/deploy/conftest.py).
"""

import datetime
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from metalcubed.cli import main as cli_main
from metalcubed.cli import manager as manager_cli
from metalcubed.controllers.kube import certs, chartgen, localcluster
from tests.deploy import conftest

Doc = dict[str, Any]
Helm = conftest.Helm
CHART = conftest.CHART
KUSTOMIZE_VALUES = conftest.HERE / "kustomize-values.yaml"
CHART_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
                "app.kubernetes.io/version"}


def render(helm: Helm, *args: str, namespace: str = "metal") -> list[Doc]:
    out = helm("template", "rel", str(CHART), "--namespace", namespace, *args).stdout
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(out, Loader=loader) if d]


def find(docs: list[Doc], kind: str, name: str) -> Doc | None:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found[0] if found else None


def container(docs: list[Doc], deployment: str) -> Doc:
    dep = find(docs, "Deployment", deployment)
    assert dep is not None, f"no Deployment {deployment}"
    c: Doc = dep["spec"]["template"]["spec"]["containers"][0]
    return c


def env(c: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c["env"] if "value" in e}


def test_generated_templates_are_fresh() -> None:
    assert chartgen.stale() == [], (
        "run: python3 -m metalcubed.controllers.kube.chartgen")


def test_chartgen_names_a_folder_without_a_chart(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert chartgen.main(["--check", "--chart", str(tmp_path)]) == 2
    assert f"--chart {tmp_path}: no Chart.yaml there" in capsys.readouterr().err


def test_chartgen_check_names_a_stale_file(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Chart.yaml").write_text("name: x\n")
    chartgen.write(tmp_path)
    victim = tmp_path / "templates" / "generated" / "rbac" / "role.yaml"
    victim.write_text(victim.read_text() + "# edited by hand\n")
    assert chartgen.main(["--check", "--chart", str(tmp_path)]) == 1
    assert f"stale: {victim}" in capsys.readouterr().err


def test_lint(any_helm: Helm) -> None:
    done = any_helm("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


# --- each values combination: rendered, and what it must change ------------------------------

def _defaults(docs: list[Doc]) -> None:
    c = container(docs, "metalcubed-manager")
    assert c["image"] == "localhost/metalcubed:0.1.0"
    assert "--agent-api-url=http://$(POD_IP):6385" in c["args"]
    assert "--boot-server-url=http://$(POD_IP):6180" in c["args"]
    assert find(docs, "Deployment", "metalcubed-capm3-manager")
    assert find(docs, "Deployment", "metalcubed-ipam-manager")
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert len(crds) == len([1 for p, d in chartgen.resources(chartgen.MANIFESTS)
                             if d["kind"] == "CustomResourceDefinition"])
    assert all(d["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for d in crds)
    # Every object in the release namespace, none in the manifests' fixed one.
    assert "metalcubed-system" not in yaml.safe_dump_all(docs)
    for d in docs:
        assert d["metadata"].get("namespace", "metal") == "metal"
    bmh = find(docs, "CustomResourceDefinition", "metal3machines.infrastructure.cluster.x-k8s.io")
    assert bmh is not None
    assert bmh["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["namespace"] == "metal"


def _pxe(docs: list[Doc]) -> None:
    pod = find(docs, "Deployment", "metalcubed-manager")
    assert pod is not None and pod["spec"]["replicas"] == 1
    assert pod["spec"]["template"]["spec"]["hostNetwork"] is True
    c = container(docs, "metalcubed-manager")
    for arg in ("--agent-api-bind-address=172.22.0.2:6385",
                "--agent-api-url=http://172.22.0.2:6385",
                "--boot-server-bind-address=172.22.0.2:6180"):
        assert arg in c["args"]
    assert env(c)["PROVISIONING_LIMIT"] == "5"


def _external(docs: list[Doc]) -> None:
    c = container(docs, "metalcubed-manager")
    assert "--agent-api-url=http://10.0.0.50:6385" in c["args"]
    assert "--boot-server-url=http://10.0.0.50:6180" in c["args"]
    assert env(c)["DEPLOY_KERNEL_URL"] == "http://images.example/ipa.kernel"
    assert env(c)["DEPLOY_RAMDISK_URL"] == "http://images.example/ipa.initramfs"
    svc = find(docs, "Service", "metalcubed-engine")
    assert svc is not None and svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["loadBalancerIP"] == "10.0.0.50"


def _iso(docs: list[Doc]) -> None:
    c = container(docs, "metalcubed-manager")
    assert env(c)["DEPLOY_ISO_URL"] == "https://images.example/ipa.iso"
    assert "--boot-server-url=https://boot.example:6180" in c["args"]


def _bmo_only(docs: list[Doc]) -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert not [n for n in names if "capm3" in n[1] or "ipam" in n[1]], names
    assert not [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert ("Deployment", "metalcubed-manager") in names


def _monitoring(docs: list[Doc]) -> None:
    mon = find(docs, "ServiceMonitor", "metalcubed")
    assert mon is not None and mon["metadata"]["labels"]["release"] == "prom"
    assert mon["spec"]["endpoints"][0]["scheme"] == "https"
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert {"metalcubed-manager-metrics", "metalcubed-capm3-metrics",
            "metalcubed-ipam-metrics"} <= services


def _tuned(docs: list[Doc]) -> None:
    c = container(docs, "metalcubed-manager")
    for arg in ("--provisioner=fixture", "--concurrency=16", "--kube-api-qps=200",
                "--kube-api-burst=300", "--log-level=debug", "--max-provisioning-retries=3"):
        assert arg in c["args"], c["args"]
    assert env(c)["WATCH_NAMESPACE"] == "hosts"
    assert c["image"] == "reg.example/metalcubed@sha256:" + "a" * 64
    assert c["resources"]["limits"]["memory"] == "1Gi"
    assert "--log-level=debug" in container(docs, "metalcubed-capm3-manager")["args"]


def _namespaced(docs: list[Doc]) -> None:
    assert find(docs, "ClusterRole", "metalcubed-manager") is None
    role = find(docs, "Role", "metalcubed-manager")
    assert role is not None and role["metadata"]["namespace"] == "metal"
    c = container(docs, "metalcubed-manager")
    (watch,) = [e for e in c["env"] if e["name"] == "WATCH_NAMESPACE"]
    assert watch["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def _cert_manager(docs: list[Doc]) -> None:
    c = container(docs, "metalcubed-manager")
    assert "--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs" in c["args"]
    cert = find(docs, "Certificate", "metalcubed-webhook-serving-cert")
    assert cert is not None
    assert "metalcubed-webhook-service.metal.svc" in cert["spec"]["dnsNames"]
    hooks = find(docs, "ValidatingWebhookConfiguration",
                 "metalcubed-validating-webhook-configuration")
    assert hooks is not None and hooks["metadata"]["annotations"][
        "cert-manager.io/inject-ca-from"] == "metal/metalcubed-webhook-serving-cert"
    assert find(docs, "Role", "metalcubed-webhook-cert") is None   # no self-managed cert
    assert find(docs, "ClusterRole", "metalcubed-webhook-configuration") is None


COMBINATIONS: dict[str, tuple[list[str], Callable[[list[Doc]], None]]] = {
    "defaults": ([], _defaults),
    "pxe": (["--set", "provisioning.pxe.enabled=true",
             "--set", "provisioning.virtualMedia.enabled=false",
             "--set", "provisioning.network.ip=172.22.0.2",
             "--set", "provisioning.network.cidr=172.22.0.0/24",
             "--set", "provisioning.network.interface=eth1",
             "--set", "provisioning.limit=5", "--set", "manager.replicas=1"], _pxe),
    "pxe-and-virtual-media": (["--set", "provisioning.pxe.enabled=true",
                               "--set", "provisioning.network.ip=172.22.0.2",
                               "--set", "provisioning.network.cidr=172.22.0.0/24",
                               "--set", "provisioning.limit=5",
                               "--set", "manager.replicas=1"], _pxe),
    "external-urls": (["--set", "provisioning.agentAPIURL=http://10.0.0.50:6385",
                       "--set", "provisioning.bootServerURL=http://10.0.0.50:6180",
                       "--set", "provisioning.urlsFromPodIP=false",
                       "--set", "provisioning.deployKernelURL=http://images.example/ipa.kernel",
                       "--set",
                       "provisioning.deployRamdiskURL=http://images.example/ipa.initramfs",
                       "--set", "engineService.type=LoadBalancer",
                       "--set", "engineService.loadBalancerIP=10.0.0.50",
                       "--set", "manager.replicas=1"], _external),
    "deploy-iso": (["--set", "provisioning.deployISOURL=https://images.example/ipa.iso",
                    "--set", "provisioning.urlsFromPodIP=false",
                    "--set", "provisioning.bootServerURL=https://boot.example:6180",
                    "--set", "manager.replicas=1"], _iso),
    "bmo-only-no-crds": (["--set", "capm3.enabled=false", "--set", "ipam.enabled=false",
                          "--set", "crds.install=false"], _bmo_only),
    "service-monitor": (["--set", "metrics.serviceMonitor.enabled=true",
                         "--set", "metrics.serviceMonitor.labels.release=prom"], _monitoring),
    "cert-manager": (["--set", "webhook.certManager.enabled=true"], _cert_manager),
    "namespaced": (["--set", "manager.namespaced=true"], _namespaced),
    "tuned": (["--set", "manager.provisioner=fixture", "--set", "manager.concurrency=16",
               "--set", "manager.kubeAPIQPS=200", "--set", "manager.kubeAPIBurst=300",
               "--set", "manager.logLevel=debug", "--set", "manager.watchNamespace=hosts",
               "--set", "manager.extraArgs={--max-provisioning-retries=3}",
               "--set", "image.repository=reg.example/metalcubed",
               "--set", "image.digest=sha256:" + "a" * 64,
               "--set", "manager.resources.limits.memory=1Gi"], _tuned),
}


@pytest.mark.parametrize("name", list(COMBINATIONS))
def test_values_combination_renders(any_helm: Helm, name: str) -> None:
    args, check = COMBINATIONS[name]
    any_helm("lint", "--strict", str(CHART), *args)
    check(render(any_helm, *args))


# --- contradictions: refused, naming the value ------------------------------------------------

BAD: dict[str, tuple[list[str], str]] = {
    "pxe without a provisioning network": (
        ["--set", "provisioning.pxe.enabled=true", "--set", "manager.replicas=1"],
        "/provisioning/network/"),
    "virtual media without a URL": (
        ["--set", "provisioning.urlsFromPodIP=false", "--set", "manager.replicas=1"],
        "/provisioning/bootServerURL"),
    "a fixed engine URL with two replicas": (
        ["--set", "provisioning.agentAPIURL=http://10.0.0.50:6385"], "/manager/replicas"),
    "pxe (hostNetwork) with two replicas": (
        ["--set", "provisioning.pxe.enabled=true",
         "--set", "provisioning.network.ip=172.22.0.2",
         "--set", "provisioning.network.cidr=172.22.0.0/24"], "/manager/replicas"),
    "a kernel without its ramdisk": (
        ["--set", "provisioning.deployKernelURL=http://images.example/k"],
        "/provisioning/deployRamdiskURL"),
    "not a URL": (["--set", "provisioning.deployISOURL=images.example/ipa.iso"],
                  "/provisioning/deployISOURL"),
    "an unknown provisioner": (["--set", "manager.provisioner=ironic"],
                               "/manager/provisioner"),
    "a misspelt value": (["--set", "manager.replica=1"], "'replica'"),
    "a namespaced manager told to watch another namespace": (
        ["--set", "manager.namespaced=true", "--set", "manager.watchNamespace=hosts"],
        "/manager/watchNamespace"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_contradictory_values_are_refused_naming_the_value(any_helm: Helm, case: str) -> None:
    args, names = BAD[case]
    done = any_helm("template", "rel", str(CHART), *args, check=False)
    assert done.returncode != 0, f"{case}: rendered"
    assert names in done.stderr, done.stderr
    assert "panic" not in done.stderr and "goroutine" not in done.stderr


# --- one source: the chart renders what the kustomize manifests ship -------------------------

def _normalised(doc: Doc) -> Doc:
    meta = doc["metadata"]
    labels = {k: v for k, v in (meta.pop("labels", None) or {}).items() if k not in CHART_LABELS}
    if labels:
        meta["labels"] = labels
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "helm.sh/resource-policy"}
    meta.pop("annotations", None)
    if annotations:
        meta["annotations"] = annotations
    return doc


def _tagged(doc: Doc) -> Doc:
    """An image without tag or digest is :latest (what a runtime pulls): the namespaced overlay
    sets no `images:`, so kustomize leaves the bare placeholder."""
    if doc["kind"] == "Deployment":
        for c in doc["spec"]["template"]["spec"]["containers"]:
            if ":" not in c["image"] and "@" not in c["image"]:
                c["image"] += ":latest"
    return doc


def _key(doc: Doc) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


@pytest.mark.parametrize(("overlay", "values"), [
    (chartgen.MANIFESTS, KUSTOMIZE_VALUES),
    (chartgen.CERT_MANAGER, conftest.HERE / "certmanager-values.yaml"),
    (chartgen.MANIFESTS / "namespaced", conftest.HERE / "namespaced-values.yaml"),
], ids=["manifests", "certmanager", "namespaced"])
def test_chart_renders_exactly_the_kustomize_manifests(
    kube_binaries: localcluster.Binaries, tmp_path: Path, overlay: Path, values: Path,
) -> None:
    assert kube_binaries.kubectl is not None, localcluster.build_command()
    built = subprocess.run([str(kube_binaries.kubectl), "kustomize", str(overlay)],
                           capture_output=True, text=True, check=True)
    manifests = {_key(d): _tagged(d) for d in yaml.safe_load_all(built.stdout)
                 if d and d["kind"] != "Namespace"}     # helm install --create-namespace
    helm = conftest.helm_runner(conftest.build_helm(conftest.HELM_VERSIONS[0]), home=tmp_path)
    chart = {_key(_normalised(d)): d for d in render(
        helm, "--values", str(values), namespace=chartgen.NAMESPACE)}
    assert sorted(set(manifests) - set(chart)) == [], "in the manifests, not in the chart"
    assert sorted(set(chart) - set(manifests)) == [], "in the chart, not in the manifests"
    for key, want in manifests.items():
        assert chart[key] == want, f"{key}: the chart's differs from controllers/manifests"


# --- the README's firewall table is what the chart opens --------------------------------------

def _readme_ports() -> dict[str, set[tuple[int, str]]]:
    """mode column -> {(port, container port name)} from the README's firewall table."""
    text = (CHART / "README.md").read_text()
    table = text.split("<!-- firewall -->")[1]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("|")]
    header, body = rows[0], rows[2:]
    modes = {name: i for i, name in enumerate(header) if name in ("virtual media", "PXE")}
    out: dict[str, set[tuple[int, str]]] = {m: set() for m in modes}
    for row in body:
        port = re.match(r"(\d+)/TCP", row[0])
        name = re.search(r"`([a-z-]+)`", row[1])
        if port is None or name is None:
            continue
        for mode, i in modes.items():
            if row[i].startswith("yes"):
                out[mode].add((int(port.group(1)), name.group(1)))
    return out


def _opened(docs: list[Doc]) -> set[tuple[int, str]]:
    return {(p["containerPort"], p["name"])
            for d in docs if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}


def test_readme_firewall_table_lists_the_ports_the_chart_opens(tmp_path: Path) -> None:
    helm = conftest.helm_runner(conftest.build_helm(conftest.HELM_VERSIONS[0]), home=tmp_path)
    table = _readme_ports()
    vm = render(helm)
    pxe = render(helm, *COMBINATIONS["pxe"][0])
    assert table["virtual media"] == _opened(vm)
    assert table["PXE"] == _opened(pxe)


# --- what the chart passes, the manager accepts ---------------------------------------------

def _write_certificate(folder: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca, ca_key = certs.new_ca(now, certs.Lifetimes())
    cert, key = certs.issue(ca, ca_key, ["metalcubed-webhook-service.metal.svc"], now,
                            certs.Lifetimes())
    for name, data in (("ca.crt", ca), ("tls.crt", cert), ("tls.key", key)):
        (folder / name).write_bytes(data)


@pytest.mark.parametrize("name", list(COMBINATIONS))
def test_every_managers_flags_pass_its_own_checks(tmp_path: Path, name: str) -> None:
    helm = conftest.helm_runner(conftest.build_helm(conftest.HELM_VERSIONS[0]), home=tmp_path)
    docs = render(helm, *COMBINATIONS[name][0])
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        c = dep["spec"]["template"]["spec"]["containers"][0]
        assert c["command"] == ["metalcubed", "manager"]
        # As the kubelet expands $(POD_IP) and mounts the volumes before the manager starts.
        mounted = {m["mountPath"]: tmp_path / m["name"] for m in c.get("volumeMounts", [])}
        secrets = {v["name"] for v in dep["spec"]["template"]["spec"].get("volumes", [])
                   if "secret" in v}
        for folder in mounted.values():
            folder.mkdir(exist_ok=True)
            if folder.name in secrets:      # the serving certificate cert-manager writes
                _write_certificate(folder)
        argv = ["manager"]
        for arg in c["args"]:
            arg = arg.replace("$(POD_IP)", "10.0.0.7")
            flag, _, value = arg.partition("=")
            argv.append(f"{flag}={mounted[value]}" if value in mounted else arg)
        options = manager_cli.options_from(cli_main.build_parser().parse_args(argv))
        assert options is not None
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["port"] in ports
