"""Properties of issue 9's admission rules over generated input, beyond upstream's own cases:
the image URL scheme allowlist, NIC selectors named once, Redfish system ids."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from metalcubed.core import bmcaddress
from metalcubed.core.api import validation

ALLOWED = list(validation.IMAGE_URL_SCHEMES)
SCHEME = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)
LABEL = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10)
PATH = st.lists(st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1,
                        max_size=8), max_size=4).map(lambda parts: "/" + "/".join(parts))


def host(**spec: object) -> dict[str, object]:
    return {"apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": "h", "namespace": "ns"}, "spec": {"online": True, **spec}}


@settings(max_examples=200, deadline=None)
@given(scheme=SCHEME, upper=st.booleans(), name=LABEL, path=PATH)
def test_image_url_is_admitted_exactly_when_its_scheme_is_listed(
    scheme: str, upper: bool, name: str, path: str
) -> None:
    written = scheme.upper() if upper else scheme
    url = f"{written}://{name}.example.com{path}"
    errors = validation.admit("CREATE", host(image={"url": url, "checksum": "abc"})).errors
    url_errors = [e for e in errors if e.field == "spec.image.url"]
    if scheme in ALLOWED:
        assert url_errors == []
    else:
        assert [e.message for e in url_errors] == [
            f'image URL {url} is invalid: invalid scheme in URL, "{scheme}" not allowed']


MACS = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(
    lambda octets: ":".join(f"{o:02x}" for o in octets))


@settings(max_examples=200, deadline=None)
@given(selectors=st.lists(st.one_of(LABEL.map(lambda n: ("name", n)),
                                    MACS.map(lambda m: ("macAddress", m))),
                          min_size=1, max_size=6),
       shout=st.lists(st.booleans(), min_size=6, max_size=6))
def test_every_nic_selector_after_its_first_use_is_a_duplicate(
    selectors: list[tuple[str, str]], shout: list[bool]
) -> None:
    interfaces = [{key: value.upper() if key == "macAddress" and loud else value}
                  for (key, value), loud in zip(selectors, shout, strict=False)]
    errors = validation.admit("CREATE", host(networkInterfaces=interfaces)).errors
    seen: set[str] = set()
    expected = []
    for index, interface in enumerate(interfaces):
        (value,) = interface.values()
        if value.lower() in seen:
            expected.append(f"spec.networkInterfaces[{index}]")
        seen.add(value.lower())
    assert [e.field for e in errors] == expected
    assert all("duplicate interface selector for" in e.message for e in errors)


REDFISH = ["redfish", "redfish+http", "redfish+https", "redfish-virtualmedia+https",
           "idrac-virtualmedia", "ilo5-redfish", "redfish-uefihttp+http"]


@settings(max_examples=200, deadline=None)
@given(scheme=st.sampled_from(REDFISH), lead=st.integers(0, 3), trail=st.integers(0, 3),
       root=st.booleans())
def test_a_path_naming_no_system_leaves_the_system_id_empty(
    scheme: str, lead: int, trail: int, root: bool
) -> None:
    path = "/" * lead + ("redfish/v1" if root else "") + "/" * trail
    if root and not lead:
        path = "/" + path  # a path after the host starts with a slash
    access = bmcaddress.parse(f"{scheme}://10.0.0.1{path}")
    assert access.system_id == ""


@settings(max_examples=200, deadline=None)
@given(scheme=st.sampled_from(REDFISH), system=PATH.filter(lambda p: p.strip("/") != ""))
def test_a_path_naming_a_system_is_the_system_id(scheme: str, system: str) -> None:
    path = "/redfish/v1/Systems" + system
    assert bmcaddress.parse(f"{scheme}://10.0.0.1{path}").system_id == path


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=12,
)
FIELDS = ["metadata", "spec", "status", "bmc", "image", "raid", "networkInterfaces", "online",
          "annotations", "name", "address", "url", "bootMACAddress"]


@settings(max_examples=300, deadline=None)
@given(operation=st.sampled_from(["CREATE", "UPDATE", "DELETE"]),
       spec=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=5),
       metadata=st.one_of(JSON, st.fixed_dictionaries({"name": st.text(max_size=10)})),
       old=st.one_of(st.none(), JSON))
def test_admit_never_raises_on_hostile_objects(
    operation: str, spec: dict[str, object], metadata: object, old: object
) -> None:
    """Whatever a client sends, the answer is an Admission whose errors name a field."""
    obj = {"apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost", "metadata": metadata,
           "spec": spec}
    stored = obj if old is None else {**obj, "spec": old}
    result = validation.admit(operation, obj, stored)
    assert all(e.field for e in result.errors)
    assert result.allowed is (not result.errors)


@settings(max_examples=500, deadline=None)
@given(address=st.one_of(
    st.text(max_size=40),
    st.tuples(st.sampled_from(["redfish://", "ipmi:", "", "[", "//", "libvirt://"]),
              st.text(alphabet=string.printable, max_size=30)).map("".join)))
def test_parse_refuses_any_address_only_with_a_field_named_error(address: str) -> None:
    bmcaddress.parse.cache_clear()
    try:
        access = bmcaddress.parse(address)
    except (bmcaddress.BMCAddressError, bmcaddress.UnknownBMCType) as err:
        assert err.field == "spec.bmc.address"
        return
    assert bmcaddress.is_valid_hostname(access.host)
