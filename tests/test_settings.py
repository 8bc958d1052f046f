"""`eventio.settings`: declared settings read from the environment and from
overrides, with messages that name the variable, the value and what is
expected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventio.settings import BOOLEAN, TEXT, FlowSettings, Setting, SettingsError, choice, integer, number

BOUND = Setting("WATERMARK_BOUND_MS", integer(0, unit="milliseconds"), 120_000, "out-of-orderness bound")
SHARDS = Setting("SHARDS", integer(1), 32, "key shards")
PASSWORD = Setting("KAFKA_SASL_PASSWORD", TEXT, None, "SASL password", secret=True, optional=True)
FLOW = FlowSettings("demo", [BOUND, SHARDS, PASSWORD,
                             Setting("GUARANTEE", choice("exactly_once", "at_least_once"), "exactly_once", "guarantee"),
                             Setting("STOP_AT_END", BOOLEAN, False, "stop"),
                             Setting("RATIO", number(0, 1), 0.5, "ratio")])


def problems(overrides: dict, env: dict) -> list[str]:
    with pytest.raises(SettingsError) as info:
        FLOW.resolve(overrides, env)
    return info.value.problems


def test_defaults_environment_and_overrides_in_that_order_of_precedence() -> None:
    assert FLOW.resolve({}, {})["watermark_bound_ms"] == 120_000
    assert FLOW.resolve({}, {"WATERMARK_BOUND_MS": " 5 ", "SHARDS": ""})["watermark_bound_ms"] == 5
    values = FLOW.resolve({"shards": 4}, {"SHARDS": "8", "STOP_AT_END": "yes"})
    assert (values["shards"], values["stop_at_end"], values["kafka_sasl_password"]) == (4, True, None)


@pytest.mark.parametrize("env, message", [
    ({"WATERMARK_BOUND_MS": "abc"}, "WATERMARK_BOUND_MS='abc': expected a non-negative integer number of milliseconds"),
    ({"WATERMARK_BOUND_MS": "-5"}, "WATERMARK_BOUND_MS='-5': expected a non-negative integer number of milliseconds"),
    ({"WATERMARK_BOUND_MS": "1.5"}, "WATERMARK_BOUND_MS='1.5': expected a non-negative integer number of milliseconds"),
    ({"SHARDS": "0"}, "SHARDS='0': expected a positive integer"),
    ({"GUARANTEE": "at_most_once"}, "GUARANTEE='at_most_once': expected one of exactly_once, at_least_once"),
    ({"STOP_AT_END": "maybe"}, "STOP_AT_END='maybe': expected true or false (also 1/0, yes/no, on/off)"),
    ({"RATIO": "nan"}, "RATIO='nan': expected a number from 0 to 1"),
])
def test_a_bad_value_names_the_variable_the_value_and_the_expectation(env: dict, message: str) -> None:
    assert problems({}, env) == [message]


def test_every_problem_is_reported_and_unknown_overrides_get_close_matches() -> None:
    assert problems({"watermark_bound": 5, "shards": 1.5}, {"RATIO": "2"}) == [
        "demo: unknown setting 'watermark_bound'; did you mean 'watermark_bound_ms'?",
        "shards=1.5: expected a positive integer",
        "RATIO='2': expected a number from 0 to 1",
    ]


def test_secrets_never_show() -> None:
    values = FLOW.resolve({}, {"KAFKA_SASL_PASSWORD": "hunter2"})
    assert values["kafka_sasl_password"] == "hunter2"
    assert ("KAFKA_SASL_PASSWORD", "***") in FLOW.shown(values)
    assert "hunter2" not in FLOW.markdown()
    with pytest.raises(SettingsError) as info:
        FlowSettings("x", [Setting("PW", integer(), 0, "", secret=True)]).resolve({}, {"PW": "hunter2"})
    assert "hunter2" not in str(info.value)


@given(st.integers())
def test_integers_are_read_back_exactly_within_bounds(n: int) -> None:
    kind = integer(0)
    if n >= 0:
        assert kind.parse(str(n)) == n
    else:
        with pytest.raises(ValueError):
            kind.parse(str(n))


def test_a_setting_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        FlowSettings("x", [SHARDS], [SHARDS.with_default(4)])
