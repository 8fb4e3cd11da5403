"""Label selectors: upstream's grammar (labels.Parse), matching and error messages."""

import pytest

from metalcubed.core import labels

LABELS = {"env": "prod", "tier": "web", "size": "7", "empty": ""}

MATCHES = [
    ("", True),
    ("env", True),
    ("missing", False),
    ("!missing", True),
    ("!env", False),
    ("env=prod", True),
    ("env==prod", True),
    ("env=dev", False),
    ("env!=dev", True),
    ("env!=prod", False),
    ("missing!=x", True),  # != matches objects without the label
    ("env in (dev,prod)", True),
    ("env in (dev)", False),
    ("missing in (x)", False),
    ("env notin (dev,qa)", True),
    ("env notin (prod)", False),
    ("missing notin (x)", True),  # so does notin
    ("size>6", True),
    ("size>7", False),
    ("size<8", True),
    ("env>1", False),  # a label that is not an integer never compares
    ("missing<100", False),
    ("empty=", True),
    ("empty in ()", True),
    ("env=prod,tier=web", True),
    ("env=prod,tier=db", False),
    ("  env = prod ,  tier  ", True),
    ("env in (prod),!missing,size<10", True),
]


@pytest.mark.parametrize(("text", "expected"), MATCHES, ids=[t or "<empty>" for t, _ in MATCHES])
def test_selector_matches_like_upstream(text: str, expected: bool) -> None:
    assert labels.parse(text).matches(LABELS) is expected


def test_keywords_are_identifiers_where_values_stand() -> None:
    selector = labels.parse("in in (in,notin)")
    assert selector.matches({"in": "notin"})
    assert not selector.matches({"in": "x"})


def test_empty_values_in_sets_are_kept() -> None:
    (req,) = labels.parse("x in (foo,,baz)").requirements
    assert req.values == ("", "baz", "foo")
    (req,) = labels.parse("x in (,)").requirements
    assert req.values == ("",)


def test_requirements_are_sorted_by_key_and_print_back() -> None:
    selector = labels.parse("z notin (b,a), !y, x, w>3, v!=1, u==2")
    assert [r.key for r in selector.requirements] == ["u", "v", "w", "x", "y", "z"]
    assert str(selector) == "u==2,v!=1,w>3,x,!y,z notin (a,b)"
    assert labels.parse(str(selector)) == selector


def test_prefixed_keys_are_qualified_names() -> None:
    assert labels.parse("metal3.io/role=worker").matches({"metal3.io/role": "worker"})


_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

ERRORS = [
    (")", "found ')', expected: !, identifier, or 'end of string'"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a,,b", "found ',', expected: identifier after ','"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a in x", "unable to parse requirement: found 'x' expected: '('"),
    ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("a >= 1", "unable to parse requirement: found '=', expected: identifier"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    (
        "a>x",
        "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, "
        "the value must be an integer",
    ),
    ("a=b/c", f'unable to parse requirement: values[0][a]: Invalid value: "b/c": {_VALUE_RULE}'),
    ("a=" + "v" * 64, "must be no more than 63 bytes"),
    (
        "a/b/c",
        f'unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name '
        f"{_NAME_RULE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ),
    ("-a", f'unable to parse requirement: <nil>: Invalid value: "-a": name part {_NAME_RULE}'),
    ("/a", '<nil>: Invalid value: "/a": prefix part must be non-empty'),
    ("Ex.com/a", 'Invalid value: "Ex.com/a": prefix part a lowercase RFC 1123 subdomain must'),
    ("k" * 64, "name part must be no more than 63 bytes"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[t[:20] for t, _ in ERRORS])
def test_bad_selectors_fail_with_upstreams_message(text: str, message: str) -> None:
    with pytest.raises(labels.SelectorError) as caught:
        labels.parse(text)
    assert message in str(caught.value)
    if message.startswith(("found", "unable")):
        assert str(caught.value) == message


def test_a_selector_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="expected"):
        labels.parse("a in")
