import pytest

from runtime.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("10ms", 0.01), ("1s", 1), ("2.4s", 2.4), ("30min", 1800), ("6h20min", 22800), ("1d", 86400),
    ("1h 30min", 5400), (5, 5.0), (0.5, 0.5), ("8h", 28800), ("90", 90.0),
])
def test_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "fast", "10 parsecs", "5x", "-1s", -2, True])
def test_rejects(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)


def test_format_round_trips() -> None:
    for seconds in (0.01, 1, 22800, 86400 + 60, 2.4):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
