"""What `metalcubed devenv status` shows: one row per host, and counts.

Kept free of the emulators and the runtime so that the status command imports quickly; the
rows are built the same way from the lab's memory store and from an API server's objects.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from metalcubed.core import bmcaddress, outcome
from metalcubed.core.api import baremetalhost as bmh

Row = dict[str, Any]


def bmc_endpoint(address: str) -> str:
    """Where the BMC answers: "http://127.0.0.1:8000" (Redfish) or "127.0.0.1:623/udp" (IPMI)."""
    try:
        parsed = bmcaddress.parse(address)
    except outcome.SpecError:
        return ""
    if parsed.type.http_transports:
        return parsed.endpoint
    return f"{parsed.host}:{parsed.port}/udp"


def host_row(host: bmh.BareMetalHost) -> Row:
    status = host.status
    address = host.spec.bmc.address
    return {
        "name": host.metadata.name,
        "namespace": host.metadata.namespace,
        "state": status.provisioning.state.value,
        "operationalStatus": status.operational_status.value,
        "errorType": status.error_type.value,
        "errorMessage": status.error_message,
        "errorCount": status.error_count,
        "poweredOn": status.powered_on,
        "credentialsValidated": status.good_credentials.credentials is not None,
        "online": host.spec.online,
        "image": host.spec.image.url if host.spec.image is not None else "",
        "bmcAddress": address,
        "bmcEndpoint": bmc_endpoint(address),
        "scheme": address.split("://", 1)[0],
        "deleting": host.metadata.deletion_timestamp is not None,
    }


def _index(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (name, -1)


def rows(hosts: Iterable[bmh.BareMetalHost]) -> list[Row]:
    """Rows in host-number order (host-2 before host-10)."""
    return sorted((host_row(h) for h in hosts), key=lambda r: _index(r["name"]))


def summary(host_rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    listed = list(host_rows)
    states = Counter(r["state"] or "<none>" for r in listed)
    return {
        "hosts": len(listed),
        "byState": dict(sorted(states.items())),
        "errors": sum(1 for r in listed if r["errorType"]),
        "delayed": sum(1 for r in listed if r["operationalStatus"] == "delayed"),
        "poweredOn": sum(1 for r in listed if r["poweredOn"]),
    }
