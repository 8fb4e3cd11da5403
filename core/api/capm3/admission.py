"""CAPM3's admission rules (upstream internal/webhooks/v1beta2, CAPM3 2f6d76b8), on v1beta2.

Upstream registers its webhooks for v1beta2 only; the API server converts a v1beta1 request
before calling them (matchPolicy Equivalent). Messages are upstream's, in apimachinery's
`field` format: `Invalid value: <value>: <detail>`, `Required value: <detail>`,
`Forbidden: <detail>`, with upstream's field paths (`Spec.Image.URL` is spelt so upstream).
Defaulting (Metal3Cluster port 6443, cloudProviderEnabled false) is not applied.

Ours, beyond upstream, on a new Metal3DataTemplate (`_template_renders`): what upstream finds
only when it renders the template for a machine, and then reports on the Metal3Data where no
one looks, is refused when the template is created: one pool name referenced as two different
kinds, a bond parameter that would overwrite a structured key (`bond_mode`, ...).
"""

import json
import urllib.parse
from collections.abc import Callable

from metalcubed.core import datatemplate, outcome
from metalcubed.core.api.capm3 import v1beta2 as v2

MIN_TIMEOUT_S = 100
MIN_RETRY_LIMIT = 1
Errors = list[outcome.SpecError]


def _invalid(path: str, value: object, detail: str) -> outcome.SpecError:
    shown = json.dumps(value) if isinstance(value, str) else str(value)
    return outcome.SpecError(path, f"Invalid value: {shown}: {detail}")


def _required(path: str, detail: str) -> outcome.SpecError:
    return outcome.SpecError(path, f"Required value: {detail}")


def _forbidden(path: str, detail: str) -> outcome.SpecError:
    return outcome.SpecError(path, f"Forbidden: {detail}")


def _request_uri(text: str) -> bool:
    """Go's url.ParseRequestURI accepts an absolute URI or an absolute path."""
    if text.startswith("/"):
        return True
    parsed = urllib.parse.urlsplit(text)
    return bool(parsed.scheme) and ":" in text and " " not in text


def validate_image(image: v2.Image | None, base: str) -> Errors:
    """Upstream's Image.Validate (api/v1beta2/common_types.go)."""
    url = image.url if image else ""
    checksum = image.checksum if image else None
    if not url and checksum is None:
        return [_required(base, "either image or customDeploy is required")]
    errors: Errors = []
    if not url:
        errors.append(_required(f"{base}.URL", "cannot be empty"))
    elif not _request_uri(url):
        errors.append(_invalid(f"{base}.URL", url, "not a valid URL"))
    assert image is not None
    if url.startswith("oci://"):
        if checksum:
            errors.append(_forbidden(f"{base}.Checksum", "must be empty for OCI images"))
        if image.checksum_type:
            errors.append(_forbidden(f"{base}.ChecksumType", "must be empty for OCI images"))
        return errors
    if image.disk_format != "live-iso":
        if not checksum:
            errors.append(_required(f"{base}.Checksum", "cannot be empty"))
        elif checksum.startswith(("http://", "https://")) and not _request_uri(checksum):
            errors.append(_invalid(f"{base}.Checksum", checksum, "not a valid URL"))
    return errors


def _machine_spec(spec: v2.Metal3MachineSpec, namespace: str, prefix: str) -> Errors:
    errors: Errors = []
    if not (spec.custom_deploy and spec.custom_deploy.method):
        errors += validate_image(spec.image, f"{prefix}Spec.Image")
    for name in ("userData", "metaData", "networkData"):
        ref = getattr(spec, {"userData": "user_data", "metaData": "meta_data",
                             "networkData": "network_data"}[name])
        if ref is not None and ref.namespace and ref.namespace != namespace:
            errors.append(_forbidden(f"{prefix.lower()}spec.{name}.namespace",
                                     "cross-namespace secret references are not allowed"))
    return errors


def validate_metal3cluster(obj: v2.Metal3Cluster, *, old: v2.Metal3Cluster | None = None
                           ) -> Errors:
    endpoint = obj.spec.control_plane_endpoint if obj.spec else None
    host = endpoint.host if endpoint else None
    if not host:
        return [_invalid("spec.controlPlaneEndpoint", "", "is required")]
    return []


def validate_metal3machine(obj: v2.Metal3Machine, *, old: v2.Metal3Machine | None = None
                           ) -> Errors:
    if obj.spec is None:
        return validate_image(None, "Spec.Image")
    return _machine_spec(obj.spec, obj.metadata.namespace, "")


def validate_metal3machinetemplate(obj: v2.Metal3MachineTemplate, *,
                                   old: v2.Metal3MachineTemplate | None = None) -> Errors:
    spec = obj.spec.template.spec if obj.spec and obj.spec.template else None
    if spec is None:
        return validate_image(None, "Spec.Template.Spec.Image")
    return _machine_spec(spec, obj.metadata.namespace, "Spec.Template.")


def _strategy(strategy: v2.RemediationStrategy | None, base: str) -> Errors:
    if strategy is None:
        return []
    errors: Errors = []
    # Absent values are the CRD defaults the API server fills in before admission.
    timeout = strategy.timeout_seconds if strategy.timeout_seconds is not None else 600
    if timeout != 0 and timeout < MIN_TIMEOUT_S:
        errors.append(_invalid(f"{base}.timeoutSeconds", timeout,
                               f"min duration is {MIN_TIMEOUT_S} seconds"))
    if strategy.type != "Reboot":
        errors.append(_invalid(f"{base}.type", strategy.type or "",
                               "is only supported remediation strategy"))
    retry = strategy.retry_limit if strategy.retry_limit is not None else 1
    if retry < MIN_RETRY_LIMIT:
        errors.append(_invalid(f"{base}.retryLimit", retry, "is minimum retrylimit"))
    return errors


def validate_metal3remediation(obj: v2.Metal3Remediation, *,
                               old: v2.Metal3Remediation | None = None) -> Errors:
    return _strategy(obj.spec.strategy if obj.spec else None, "spec.strategy")


def validate_metal3remediationtemplate(obj: v2.Metal3RemediationTemplate, *,
                                       old: v2.Metal3RemediationTemplate | None = None) -> Errors:
    spec = obj.spec.template.spec if obj.spec and obj.spec.template else None
    return _strategy(spec.strategy if spec else None, "spec.template.spec.strategy")


def _ref_changed(name: str, new: v2.ObjectRef | None, old: v2.ObjectRef | None) -> Errors:
    new_pair = (new.name if new else None, new.namespace if new else None)
    old_pair = (old.name if old else None, old.namespace if old else None)
    if (new_pair[0] or "") != (old_pair[0] or "") or (new_pair[1] or "") != (old_pair[1] or ""):
        return [_invalid(f"spec.{name}", new_pair[0] or "", "cannot be modified")]
    return []


def validate_metal3data(obj: v2.Metal3Data, *, old: v2.Metal3Data | None = None) -> Errors:
    spec = obj.spec
    if old is not None:
        old_spec = old.spec
        errors: Errors = []
        if (spec.index if spec else 0) != (old_spec.index if old_spec else 0):
            errors.append(_invalid("spec.Index", spec.index if spec else 0, "cannot be modified"))
        for name in ("claim", "template"):
            errors += _ref_changed(name, getattr(spec, name) if spec else None,
                                   getattr(old_spec, name) if old_spec else None)
        return errors
    errors = []
    if spec is not None and spec.index is not None and spec.template is not None and (
            obj.metadata.name != f"{spec.template.name}-{spec.index}"):
        errors.append(_invalid("name", obj.metadata.name,
                               "should follow the convention <Metal3Template Name>-<index>"))
    if spec is not None and spec.index is not None and spec.index < 0:
        errors.append(_invalid("spec.Index", spec.index, "must be positive value"))
    return errors


def validate_metal3dataclaim(obj: v2.Metal3DataClaim, *, old: v2.Metal3DataClaim | None = None
                             ) -> Errors:
    template = obj.spec.template if obj.spec else None
    if old is not None:
        return _ref_changed("template", template, old.spec.template if old.spec else None)
    errors: Errors = []
    if template is None or not template.name:
        errors.append(_invalid("spec.template.name", "", "must be set"))
    if template is not None and template.namespace and (
            template.namespace != obj.metadata.namespace):
        errors.append(_invalid(
            "spec.template.namespace", template.namespace,
            "must be empty or match the Metal3DataClaim namespace; cross-namespace template "
            "references are not allowed"))
    return errors


def validate_metal3datatemplate(obj: v2.Metal3DataTemplate, *,
                                old: v2.Metal3DataTemplate | None = None) -> Errors:
    spec = obj.spec or v2.Metal3DataTemplateSpec()
    errors: Errors = []
    if old is not None:
        old_spec = old.spec or v2.Metal3DataTemplateSpec()
        if spec.meta_data != old_spec.meta_data:
            errors.append(_invalid("spec.MetaData", "", "cannot be modified"))
        if spec.network_data != old_spec.network_data:
            errors.append(_invalid("spec.NetworkData", "", "cannot be modified"))
    for i, item in enumerate((spec.meta_data.from_host_interfaces if spec.meta_data else None)
                             or ()):
        path = f"spec.metaData.fromHostInterfaces.{i}.interface"
        if not item.from_boot_mac and not item.interface:
            errors.append(_required(path, "interface must be specified when fromBootMAC is "
                                          "false"))
        if item.from_boot_mac and item.interface:
            errors.append(_invalid(path, item.interface,
                                   "interface must be empty when fromBootMAC is true"))
    networks = spec.network_data.networks if spec.network_data else None
    v4: tuple[v2.NetworkDataIPv4 | v2.NetworkDataIPv6, ...] = tuple(
        (networks.ipv4 if networks else None) or ())
    v6: tuple[v2.NetworkDataIPv4 | v2.NetworkDataIPv6, ...] = tuple(
        (networks.ipv6 if networks else None) or ())
    for family, items in (("ipv4", v4), ("ipv6", v6)):
        for i, network in enumerate(items):
            ref = network.from_pool_ref
            annotation = network.from_pool_annotation
            if not (ref and ref.name) and not network.ip_address_from_ip_pool and not (
                    annotation and annotation.object):
                errors.append(_required(f"spec.networkData.networks.{family}.{i}.fromPoolRef.name",
                                        "fromPoolRef needs to contain a reference to an IPPool"))
    if old is None:
        errors += _template_renders(spec)
    return errors


def _template_renders(spec: v2.Metal3DataTemplateSpec) -> Errors:
    errors: Errors = []
    try:
        datatemplate.referenced_pools(spec)
    except datatemplate.RenderError as err:
        errors.append(outcome.SpecError(err.field, f"Invalid value: {err.message}"))
    links = spec.network_data.links if spec.network_data else None
    for i, bond in enumerate((links.bonds if links else None) or ()):
        for j, param in enumerate(bond.parameters):
            if param.name in ("mode", "xmit_hash_policy", "links"):
                errors.append(_invalid(f"spec.networkData.links.bonds[{i}].parameters[{j}].name",
                                       param.name, f"would overwrite bond_{param.name}, which "
                                                   "the bond's own field sets"))
    return errors


def warn_metal3datatemplate(obj: v2.Metal3DataTemplate, *,
                            old: v2.Metal3DataTemplate | None = None) -> list[str]:
    if obj.spec is not None and obj.spec.cluster_name:
        return ["spec.clusterName is deprecated and will be removed in a future release. It is "
                "no longer used by the controllers."]
    return []


WEBHOOKS: dict[str, Callable[..., Errors]] = {
    "Metal3Cluster": validate_metal3cluster,
    "Metal3Machine": validate_metal3machine,
    "Metal3MachineTemplate": validate_metal3machinetemplate,
    "Metal3Remediation": validate_metal3remediation,
    "Metal3RemediationTemplate": validate_metal3remediationtemplate,
    "Metal3Data": validate_metal3data,
    "Metal3DataClaim": validate_metal3dataclaim,
    "Metal3DataTemplate": validate_metal3datatemplate,
}
"""Kind -> upstream's validating webhook. Metal3ClusterTemplate has none upstream."""
