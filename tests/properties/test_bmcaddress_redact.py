"""Redaction of `spec.bmc.address`, over generated passwords: a password may hold `@`, `:`,
`/`, `?`, `#`, `%` or spaces, and no message built from the address may show any of it."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from metalcubed.core import bmc, bmcaddress

SCHEMES = ["redfish", "redfish+http", "redfish-virtualmedia+https", "idrac-virtualmedia",
           "ipmi", "libvirt", "foo"]
HOSTS = ["10.0.0.5", "bmc.example.com", "[fd00::1]", "bmc-1:8443", "10.0.0.5:623"]
PATHS = ["", "/", "/redfish/v1/Systems/1", "/redfish/v1/Systems/1?x=1"]
USERS = st.text(alphabet=string.ascii_lowercase + string.digits + "._-", min_size=1, max_size=12)
PASSWORDS = st.text(alphabet=string.printable.strip() + " @:/?#%", min_size=1, max_size=24)
SECRET_LETTERS = "QZJW"
"""Letters no scheme, host, path, username or message text below uses."""
MARKED = st.lists(
    st.one_of(st.text(alphabet=SECRET_LETTERS, min_size=1, max_size=4),
              st.sampled_from(list("@:/?#% ["))),
    min_size=1, max_size=10,
).map("".join).filter(lambda p: any(c in SECRET_LETTERS for c in p))


@settings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), user=USERS, password=PASSWORDS,
       host=st.sampled_from(HOSTS), path=st.sampled_from(PATHS))
def test_redact_hides_exactly_the_password(scheme: str, user: str, password: str, host: str,
                                           path: str) -> None:
    address = f"{scheme}://{user}:{password}@{host}{path}"
    assert bmcaddress.redact(address) == f"{scheme}://{user}:xxxxx@{host}{path}"


@settings(max_examples=200, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), user=USERS, password=PASSWORDS,
       host=st.sampled_from(HOSTS))
def test_redact_without_slashes_hides_the_password(scheme: str, user: str, password: str,
                                                   host: str) -> None:
    # `scheme:opaque` is read as `scheme://opaque`; `user:pw@host` reads `user` as a scheme.
    assert bmcaddress.redact(f"{scheme}:{user}:{password}@{host}") == f"{scheme}:xxxxx@{host}"
    assert bmcaddress.redact(f"{user}:{password}@{host}") in (
        f"{user}:xxxxx@{host}", f"xxxxx@{host}")  # `user` read as a scheme, or not


@settings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), user=USERS, password=MARKED,
       host=st.sampled_from(HOSTS), path=st.sampled_from(PATHS), slashes=st.booleans())
def test_no_message_about_the_address_shows_any_of_the_password(
        scheme: str, user: str, password: str, host: str, path: str, slashes: bool) -> None:
    address = f"{scheme}:{'//' if slashes else ''}{user}:{password}@{host}{path}"
    shown = [bmcaddress.redact(address),
             str(bmc.BmcUnreachable(address, "power on", "timed out"))]
    try:
        bmcaddress.parse(address)
    except bmcaddress.BMCAddressError as err:
        shown.append(str(err))
    except bmcaddress.UnknownBMCType as err:
        shown.append(str(err))
    for text in shown:
        assert not set(text) & set(SECRET_LETTERS), text
