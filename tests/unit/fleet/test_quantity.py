"""Durations and sizes as scenario files write them."""

import pytest

from metalcubed.simulators.fleet import quantity


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2.5m", 150.0),
        ("1d", 86400.0),
        (90, 90.0),
        (0.25, 0.25),
    ],
    ids=["seconds", "millis", "minutes", "compound", "fraction", "day", "int", "float"],
)
def test_durations_parse_with_units(text: object, seconds: float) -> None:
    assert quantity.parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["-5s", "5 minutes", "1h 30m", "m5", "", "30", "5x"], ids=str
)
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        quantity.parse_duration_s(text)


def test_negative_number_duration_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        quantity.parse_duration_s(-1)


@pytest.mark.parametrize("value", [True, None, [1]], ids=["bool", "none", "list"])
def test_non_numbers_are_type_errors(value: object) -> None:
    with pytest.raises(TypeError):
        quantity.parse_duration_s(value)


@pytest.mark.parametrize(
    ("text", "size"),
    [("800MB", 800 * 10**6), ("2GiB", 2 * 2**30), ("1.5GB", 1_500_000_000), (4096, 4096)],
    ids=["MB", "GiB", "fractional", "bytes"],
)
def test_sizes_parse_with_units(text: object, size: int) -> None:
    assert quantity.parse_size_bytes(text) == size


@pytest.mark.parametrize("text", ["0MB", "-1GB", "2 gigs", "GB"], ids=str)
def test_bad_sizes_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        quantity.parse_size_bytes(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (42.0, "42.0s"), (432.0, "7m12s"), (11100.0, "3h05m")],
    ids=str,
)
def test_format_duration_picks_a_readable_unit(seconds: float, text: str) -> None:
    assert quantity.format_duration(seconds) == text
