"""Label selectors, the one implementation: upstream's string syntax, matching and errors.

Every store filters `list(..., label_selector=...)` with this module (the memory store, the kube
informer cache), so a selector means the same thing, and fails with the same message, whether
the memory store or the API server answers. It follows k8s.io/apimachinery/pkg/labels
(`labels.Parse`):

    <selector>    ::= <requirement> | <requirement> "," <selector>
    <requirement> ::= ["!"] KEY [ ("in" | "notin") "(" VALUE {"," VALUE} ")"
                                | ("=" | "==" | "!=" | ">" | "<") VALUE ]

- `k` exists, `!k` does not exist; `k=v` and `k==v` equal; `k!=v` and `k notin (..)` also match
  objects without the label; `k in (..)` needs the label; `k>n`, `k<n` compare integers (a
  non-integer label value never matches). Requirements are ANDed; "" selects everything.
- Tokens are separated by optional whitespace; `in`/`notin` are keywords only where an
  operator is expected (`in in (in)` is valid), an empty value is allowed (`k=`, `k in ()`).
- KEY is a qualified name (optional DNS-subdomain prefix and "/", name of at most 63
  characters), VALUE a label value (at most 63, alphanumerics and `-_.` inside).
- A bad selector raises `SelectorError` (a ValueError) with upstream's message, e.g.
  `unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name must ...` or
  `found ')', expected: !, identifier, or 'end of string'`.
Pure: no I/O; parsing is linear in the selector's length.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum


class SelectorError(ValueError):
    """The selector string does not parse; the message is upstream's."""


class Operator(StrEnum):
    """selection.Operator: the relation a requirement asks for."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), or None where it fails."""
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One `key op values` clause; `values` sorted and distinct, as upstream keeps them."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        value = labels.get(self.key)
        if op is Operator.IN or op is Operator.EQUALS or op is Operator.DOUBLE_EQUALS:
            return value is not None and value in self.values
        if op is Operator.NOT_IN or op is Operator.NOT_EQUALS:
            return value is None or value not in self.values
        if op is Operator.EXISTS:
            return value is not None
        if op is Operator.DOES_NOT_EXIST:
            return value is None
        if value is None or len(self.values) != 1:
            return False
        have, want = _int64(value), _int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        joined = ",".join(self.values)
        if op is Operator.IN or op is Operator.NOT_IN:
            return f"{self.key} {op.value} ({joined})"
        sign = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{sign}{joined}"


@dataclass(frozen=True, slots=True)
class Selector:
    """Requirements ANDed, sorted by key; no requirement selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(req) for req in self.requirements)


def parse(text: str) -> Selector:
    """Parse the string form (see the module doc); raises `SelectorError`."""
    return Selector(tuple(sorted(_Parser(_lex(text)).parse(), key=lambda r: r.key)))


# --- validation of keys and values (k8s.io/apimachinery/pkg/util/validation) -----------------

_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME = re.compile(_NAME_FMT)
_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{_NAME_FMT}')"
)
_SUBDOMAIN_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_SUBDOMAIN = re.compile(_SUBDOMAIN_FMT)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_SUBDOMAIN_FMT}')"
)
_VALUE_FMT = f"({_NAME_FMT})?"
_VALUE = re.compile(_VALUE_FMT)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_VALUE_FMT}')"
)


def _key_problems(key: str) -> list[str]:
    """validation.IsQualifiedName (what IsLabelKey checks)."""
    parts = key.split("/")
    if len(parts) > 2:
        return [
            f"a qualified name {_NAME_MSG} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    problems: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        elif len(prefix) > 253:
            problems.append("prefix part must be no more than 253 bytes")
        elif not _SUBDOMAIN.fullmatch(prefix):
            problems.append(f"prefix part {_SUBDOMAIN_MSG}")
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 bytes")
    if name and not _NAME.fullmatch(name):
        problems.append(f"name part {_NAME_MSG}")
    return problems


def _value_problems(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    problems: list[str] = []
    if len(value) > 63:
        problems.append("must be no more than 63 bytes")
    if not _VALUE.fullmatch(value):
        problems.append(_VALUE_MSG)
    return problems


def _invalid(path: str, value: str, problems: list[str]) -> str:
    """field.Invalid(path, value, ...).Error(); Go prints a nil path as <nil>."""
    return f"{path}: Invalid value: {json.dumps(value, ensure_ascii=False)}: {'; '.join(problems)}"


# --- lexer -----------------------------------------------------------------------------------


class _Tok(Enum):
    END = "end of string"
    CLOSE = ")"
    COMMA = ","
    NOT = "!"
    DOUBLE_EQUALS = "=="
    EQUALS = "="
    GREATER = ">"
    IDENT = "identifier"
    IN = "in"
    LESS = "<"
    NOT_EQUALS = "!="
    NOT_IN = "notin"
    OPEN = "("


_SYMBOLS = {
    tok.value: tok
    for tok in _Tok
    if tok not in (_Tok.END, _Tok.IDENT)
}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")


def _lex(text: str) -> list[tuple[_Tok, str]]:
    """The whole token list, ending with END (upstream scans everything before parsing)."""
    items: list[tuple[_Tok, str]] = []
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= size:
            items.append((_Tok.END, ""))
            return items
        if text[pos] in _SPECIAL:
            two = text[pos : pos + 2]
            if len(two) == 2 and two[1] in _SPECIAL and two in _SYMBOLS:
                items.append((_SYMBOLS[two], two))
                pos += 2
            else:
                items.append((_SYMBOLS[text[pos]], text[pos]))
                pos += 1
            continue
        start = pos
        while pos < size and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
            pos += 1
        word = text[start:pos]
        keyword = _SYMBOLS.get(word)
        items.append((keyword if keyword in (_Tok.IN, _Tok.NOT_IN) else _Tok.IDENT, word))


# --- parser ----------------------------------------------------------------------------------

_BINARY = {
    _Tok.IN: Operator.IN,
    _Tok.EQUALS: Operator.EQUALS,
    _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
    _Tok.GREATER: Operator.GREATER_THAN,
    _Tok.LESS: Operator.LESS_THAN,
    _Tok.NOT_IN: Operator.NOT_IN,
    _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
}
_BINARY_NAMES = "in, notin, =, ==, !=, gt, lt"


class _Parser:
    """Upstream's recursive descent: `in`/`notin` read as identifiers where values may stand."""

    def __init__(self, items: list[tuple[_Tok, str]]) -> None:
        self._items = items
        self._pos = 0

    def _peek(self, *, values: bool = True) -> tuple[_Tok, str]:
        tok, lit = self._items[self._pos]
        if values and tok in (_Tok.IN, _Tok.NOT_IN):
            tok = _Tok.IDENT
        return tok, lit

    def _next(self, *, values: bool = True) -> tuple[_Tok, str]:
        item = self._peek(values=values)
        self._pos += 1
        return item

    def parse(self) -> list[Requirement]:
        found: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok is _Tok.END:
                return found
            if tok not in (_Tok.IDENT, _Tok.NOT):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                found.append(self._requirement())
            except SelectorError as error:
                raise SelectorError(f"unable to parse requirement: {error}") from None
            tok, lit = self._next()
            if tok is _Tok.END:
                return found
            if tok is not _Tok.COMMA:
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            tok2, lit2 = self._peek()
            if tok2 not in (_Tok.IDENT, _Tok.NOT):
                raise SelectorError(f"found '{lit2}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        tok, lit = self._next()
        negated = tok is _Tok.NOT
        if negated:
            tok, lit = self._next()
        if tok is not _Tok.IDENT:
            raise SelectorError(f"found '{lit}', expected: identifier")
        if problems := _key_problems(lit):
            raise SelectorError(_invalid("<nil>", lit, problems))
        key = lit
        if negated:  # `!key` takes no operator: what follows must be "," or the end
            return Requirement(key, Operator.DOES_NOT_EXIST)
        if self._peek()[0] in (_Tok.END, _Tok.COMMA):
            return Requirement(key, Operator.EXISTS)
        tok, lit = self._next(values=False)
        op = _BINARY.get(tok)
        if op is None:
            raise SelectorError(f"found '{lit}', expected: {_BINARY_NAMES}")
        values = self._set() if op in (Operator.IN, Operator.NOT_IN) else self._exact()
        return _requirement(key, op, sorted(values))

    def _set(self) -> set[str]:
        tok, lit = self._next()
        if tok is not _Tok.OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok is _Tok.CLOSE:  # "()"
            self._next()
            return {""}
        if tok not in (_Tok.IDENT, _Tok.COMMA):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self._list()
        if self._next()[0] is not _Tok.CLOSE:
            raise SelectorError(f"found '{lit}', expected: ')'")
        return values

    def _list(self) -> set[str]:
        """Comma-separated values, possibly empty ones (`(a,,b)`, `(,a)`, `(a,)`)."""
        values: set[str] = set()
        while True:
            tok, lit = self._next()
            if tok is _Tok.IDENT:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 is _Tok.COMMA:
                    continue
                if tok2 is _Tok.CLOSE:
                    return values
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok is _Tok.COMMA:
                if not values:
                    values.add("")
                tok2 = self._peek()[0]
                if tok2 is _Tok.CLOSE:
                    values.add("")
                    return values
                if tok2 is _Tok.COMMA:
                    values.add("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def _exact(self) -> set[str]:
        if self._peek()[0] in (_Tok.END, _Tok.COMMA):
            return {""}
        tok, lit = self._next()
        if tok is not _Tok.IDENT:
            raise SelectorError(f"found '{lit}', expected: identifier")
        return {lit}


def _requirement(key: str, op: Operator, values: list[str]) -> Requirement:
    """labels.NewRequirement's checks of the values (the key was checked while parsing)."""
    errors: list[str] = []
    if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        for index, value in enumerate(values):
            if _int64(value) is None:
                errors.append(
                    _invalid(f"values[{index}]", value,
                             ["for 'Gt', 'Lt' operators, the value must be an integer"])
                )
    for index, value in enumerate(values):
        if problems := _value_problems(value):
            errors.append(_invalid(f"values[{index}][{key}]", value, problems))
    if len(errors) == 1:
        raise SelectorError(errors[0])
    if errors:
        raise SelectorError(f"[{', '.join(errors)}]")
    return Requirement(key, op, tuple(values))
