"""`metalcubed validate` on CAPM3 and IPAM manifests: upstream's examples pass, a v1beta1 object
gets the v1beta2 webhook rules the API server applies after conversion, and the IPPool rules
that need several objects (a shared namePrefix) run across every file given."""

from pathlib import Path

import pytest

from metalcubed.cli import main as cli

EXAMPLES = Path(__file__).parent / "upstream" / "examples"

V1BETA1_TEMPLATE = """\
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: Metal3DataTemplate
metadata: {name: t, namespace: lab}
spec:
  clusterName: c1
  metaData:
    ipAddressesFromIPPool: [{key: ip, name: p}]
  networkData:
    networks:
      ipv4:
      - id: n
        link: eth0
        fromPoolRef: {name: p, kind: InClusterIPPool, apiGroup: ipam.cluster.x-k8s.io}
"""


def _pool(name: str, prefix: str) -> str:
    return (f"apiVersion: ipam.metal3.io/v1alpha1\nkind: IPPool\n"
            f"metadata: {{name: {name}, namespace: lab}}\n"
            f"spec: {{namePrefix: {prefix}, pools: [{{subnet: 10.0.0.0/24}}]}}\n")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = cli.main(["validate", *args])
    return code, capsys.readouterr().out.splitlines()


def test_upstreams_capm3_examples_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, str(EXAMPLES / "capm3-cluster.yaml"),
                      str(EXAMPLES / "capm3-hosts.yaml"))
    assert (code, lines) == (0, [])


def test_a_v1beta1_object_gets_the_v1beta2_rules_after_conversion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(V1BETA1_TEMPLATE)
    code, lines = run(capsys, str(path))
    assert code == 1
    assert lines == [
        f"{path}:1: spec.networkData.networks.ipv4[0].fromPoolRef: Invalid value: pool 'p' is "
        "referenced as IPPool (ipam.metal3.io) and as InClusterIPPool (ipam.cluster.x-k8s.io): "
        "multiple references with the same name but different resource types (checked as "
        "infrastructure.cluster.x-k8s.io/v1beta2)"]


def test_pools_sharing_a_name_prefix_across_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(_pool("a", "shared"))
    second.write_text(_pool("b", "shared") + "---\n" + _pool("c", "own"))
    code, lines = run(capsys, str(first), str(second))
    assert code == 1
    assert lines == [f'{second}:1: spec.namePrefix: Invalid value: "shared": is already used by '
                     'IPPool "a" in this namespace: the pools\' IPAddress names would collide']
