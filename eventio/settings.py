"""Settings declared once: name, kind, default, unit, allowed values, doc.

A flow lists its settings (`FlowSettings`) from shared declarations (the IO
settings every flow has, the event-time ones most have) and its own. From
that one list come the environment parsing, the validation of
`build(**overrides)` (unknown names are refused with the close matches),
the `python -m flows describe` text, the README's variable tables and the
`check` command's resolved configuration, secrets masked.

An invalid value is a `SettingsError` whose message names the variable, the
value given and what is expected:

    WATERMARK_BOUND_MS='abc': expected a non-negative integer number of milliseconds

Plain Python; reading the environment happens in `resolve`, never at import.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigurationError(ValueError):
    """A problem a person fixes by changing the flow's configuration (a
    setting, a file it names, a recovery store it points to); the message
    says what. A command-line run ends with it and exit status 2, without a
    traceback (`eventio.bytewax_run.exits_on_configuration_error`)."""


class SettingsError(ConfigurationError):
    """Settings a person must fix; one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class WhyNot(ValueError):
    """Raised by a `Kind`'s `parse` to add why the text is not accepted to
    the message (a regular expression's syntax error, say)."""


@dataclass(frozen=True)
class Kind:
    """How a setting's text is read and checked: `parse(text)` gives the
    value or raises `ValueError`; `accepts(value)` checks a value given in
    Python (an override); `expected` completes "expected ..."."""

    expected: str
    parse: Callable[[str], Any]
    accepts: Callable[[Any], bool]


def _expected(noun: str, minimum: Optional[float], maximum: Optional[float], unit: str) -> str:
    """"a non-negative integer number of milliseconds", "a number from 0 to 1", ..."""
    if minimum == 0 and maximum is None:
        text = f"a non-negative {noun}"
    elif minimum == 1 and maximum is None and noun == "integer":
        text = "a positive integer"
    else:
        text = f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
    if unit:
        text += f" number of {unit}" if noun == "integer" else f" of {unit}"
    if minimum not in (None, 0, 1) or (minimum == 1 and noun != "integer") or maximum is not None:
        if minimum is not None and maximum is not None:
            text += f" from {minimum} to {maximum}"
        elif minimum is not None:
            text += f" of at least {minimum}"
        else:
            text += f" of at most {maximum}"
    return text


def integer(minimum: Optional[int] = None, maximum: Optional[int] = None, unit: str = "") -> Kind:
    """An integer in `[minimum, maximum]`, in `unit` (e.g. "milliseconds")."""

    def ok(v: Any) -> bool:
        return (isinstance(v, int) and not isinstance(v, bool)
                and (minimum is None or v >= minimum) and (maximum is None or v <= maximum))

    def parse(text: str) -> int:
        value = int(text)
        if not ok(value):
            raise ValueError(text)
        return value

    return Kind(_expected("integer", minimum, maximum, unit), parse, ok)


def number(minimum: Optional[float] = None, maximum: Optional[float] = None, unit: str = "") -> Kind:
    """A finite number in `[minimum, maximum]`, in `unit`."""

    def ok(v: Any) -> bool:
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and (minimum is None or v >= minimum) and (maximum is None or v <= maximum))

    def parse(text: str) -> float:
        value = float(text)
        if not ok(value):
            raise ValueError(text)
        return value

    return Kind(_expected("number", minimum, maximum, unit), parse, ok)


def _parse_boolean(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(text)


BOOLEAN = Kind("true or false (also 1/0, yes/no, on/off)", _parse_boolean, lambda v: isinstance(v, bool))
TEXT = Kind("text", str, lambda v: isinstance(v, str))


def _folded(text: str) -> str:
    return text.strip().lower().replace("-", "_")


def choice(*options: str) -> Kind:
    """One of `options`, given in any case and with `-` for `_`
    (`Backward-Transitive` is `BACKWARD_TRANSITIVE`); the value is the
    option as declared."""
    canonical = {_folded(o): o for o in options}

    def parse(text: str) -> str:
        try:
            return canonical[_folded(text)]
        except KeyError:
            raise ValueError(text) from None

    return Kind(f"one of {', '.join(options)}", parse, lambda v: v in options)


@dataclass(frozen=True)
class Setting:
    """One setting: environment variable `name`, override `name.lower()`."""

    name: str
    kind: Kind
    default: Any
    doc: str
    secret: bool = False
    optional: bool = False
    """Unset (None) by default; the doc says what unset means."""

    @property
    def key(self) -> str:
        """The `build(**overrides)` name."""
        return self.name.lower()

    def with_default(self, default: Any) -> "Setting":
        """The same setting with a flow's own default."""
        return replace(self, default=default)

    def with_doc(self, doc: str) -> "Setting":
        """The same setting with what it means in one flow."""
        return replace(self, doc=doc)

    def read(self, env: Mapping[str, str], overrides: Mapping[str, Any]) -> Any:
        """The value: an override, else the variable (unset or blank means
        the default), else the default. `ValueError` with the message."""
        if self.key in overrides:
            value = overrides[self.key]
            if (value is None and self.optional) or self.kind.accepts(value):
                return value
            raise ValueError(f"{self.key}={self.shown(value)}: expected {self.kind.expected}")
        raw = env.get(self.name)
        if raw is None or not raw.strip():
            return self.default
        try:
            return self.kind.parse(raw.strip())
        except WhyNot as ex:
            raise ValueError(f"{self.name}={self.shown(raw)}: expected {self.kind.expected} ({ex})") from None
        except ValueError:
            raise ValueError(f"{self.name}={self.shown(raw)}: expected {self.kind.expected}") from None

    def shown(self, value: Any) -> str:
        """`value` as a message may show it: masked if secret."""
        return "'***'" if self.secret else repr(value)

    def text(self, value: Any) -> str:
        """`value` as `check` prints it, masked if secret."""
        if self.secret and value:
            return "***"
        if value is None:
            return "(unset)"
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def default_text(self) -> str:
        if self.optional and self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return f"`{self.default}`" if self.default != "" else "empty"


class FlowSettings:
    """The settings of one flow, in the order they are documented."""

    def __init__(self, flow: str, *groups: Iterable[Setting]) -> None:
        self.flow = flow
        self.settings: list[Setting] = []
        by_name: dict[str, Setting] = {}
        for setting in (s for group in groups for s in group):
            if setting.name in by_name:
                raise ValueError(f"{flow}: setting {setting.name} is declared twice")
            by_name[setting.name] = setting
            self.settings.append(setting)
        self._by_key = {s.key: s for s in self.settings}

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def __getitem__(self, key: str) -> Setting:
        return self._by_key[key]

    def resolve(self, overrides: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None,
                extra: Iterable[str] = ()) -> dict[str, Any]:
        """Every setting's value by key, from `overrides`, then `env`
        (default `os.environ`), then the defaults. Override names that are
        not settings (nor in `extra`, non-setting arguments such as a
        clock) and invalid values raise one `SettingsError` listing them."""
        overrides = dict(overrides or {})
        env = os.environ if env is None else env
        problems: list[str] = []
        known = set(self._by_key) | set(extra)
        for name in overrides:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=3)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                problems.append(f"{self.flow}: unknown setting {name!r}{hint}")
        values: dict[str, Any] = {}
        for setting in self.settings:
            try:
                values[setting.key] = setting.read(env, overrides)
            except ValueError as ex:
                problems.append(str(ex))
        if problems:
            raise SettingsError(problems)
        return values

    def shown(self, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """`(variable, value)` per setting as `check` prints them, secrets masked."""
        return [(setting.name, setting.text(values[setting.key])) for setting in self.settings]

    def markdown(self, names: Optional[Iterable[str]] = None) -> str:
        """The README table of these settings (or of those in `names`)."""
        wanted = None if names is None else set(names)
        rows = ["| variable | default | meaning |", "|---|---|---|"]
        for s in self.settings:
            if wanted is None or s.name in wanted:
                rows.append(f"| `{s.name}` | {s.default_text()} | {s.doc} |")
        return "\n".join(rows)
