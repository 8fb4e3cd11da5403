"""A Secret printed or logged (repr, str, an f-string) shows its keys, never its values
(DESIGN rule 7; issue 14, security item 2)."""

import base64

from metalcubed.core.api import meta

PASSWORD = "pw-not-in-repr-0c1"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def test_repr_and_str_of_a_secret_show_keys_not_values() -> None:
    applied = f'{{"stringData":{{"password":"{PASSWORD}"}}}}'
    secret = meta.Secret.from_wire({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bmc", "namespace": "lab",
                     "annotations": {LAST_APPLIED: applied}},
        "data": {"password": base64.b64encode(PASSWORD.encode()).decode()},
        "stringData": {"username": "admin", "password": PASSWORD},
    })
    assert secret.value("password") == PASSWORD
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}"):
        assert PASSWORD not in text
        assert base64.b64encode(PASSWORD.encode()).decode() not in text
        assert "lab/bmc" in text and "password" in text  # still says which Secret and keys
