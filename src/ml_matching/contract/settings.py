"""Settings: frozen dataclasses whose fields name their environment variable, read once.

A field made with :func:`setting` carries its variable's name, what it means and how its text is
parsed; :func:`read_settings` builds the object from an ``environ`` mapping (``os.environ``, or a
plain dict in tests), and :func:`variables` lists every variable with its default for the
configuration reference. A bad value stops start-up with a :class:`SettingsError` that names the
variable and the rule it broke; empty strings count as unset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ml_matching.contract.errors import InvalidInput, SettingsError

T = TypeVar("T")
S = TypeVar("S")
Parse = Callable[[str], Any]
_KEY = "ml_matching.variable"


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, what it means, and how its text is read."""

    name: str
    doc: str
    parse: Parse


def setting(default: T, name: str, doc: str, parse: Parse) -> T:
    """A dataclass field read from the environment variable ``name`` (``default`` when unset)."""
    return dataclasses.field(default=default, metadata={_KEY: Variable(name, doc, parse)})


def read_settings(cls: type[S], environ: Mapping[str, str]) -> S:
    """``cls`` with every field whose variable is set in ``environ`` parsed from it.

    Raises
    ------
    SettingsError
        A variable's value cannot be used; the message names the variable and the rule.
    """
    given = {k: v.strip() for k, v in environ.items() if v.strip()}
    values = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        variable: Variable | None = field.metadata.get(_KEY)
        if variable is None or variable.name not in given:
            continue
        text = given[variable.name]
        try:
            values[field.name] = variable.parse(text)
        except (ValueError, InvalidInput) as exc:
            shown = "(a secret, not shown)" if variable.parse is token else repr(text)
            raise SettingsError(f"{variable.name}={shown}: {exc}") from None
    return cls(**values)


def variables(cls: type[Any]) -> list[tuple[Variable, Any]]:
    """Every environment variable ``cls`` reads, with its default, in field order."""
    out = []
    for field in dataclasses.fields(cls):
        variable = field.metadata.get(_KEY)
        if variable is not None:
            out.append((variable, field.default))
    return out


def integer(lo: int, hi: int) -> Parse:
    def parse(text: str) -> int:
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}")
        return value

    return parse


def number(lo: float, hi: float) -> Parse:
    def parse(text: str) -> float:
        value = float(text)
        if not lo <= value <= hi:  # also refuses NaN
            raise ValueError(f"expected a number from {lo:g} to {hi:g}")
        return value

    return parse


def choice(options: tuple[str, ...], upper: bool = False) -> Parse:
    def parse(text: str) -> str:
        value = text.upper() if upper else text
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def boolean(text: str) -> bool:
    value = text.lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError("expected true or false (1/0, yes/no, on/off)")
    return value in ("1", "true", "yes", "on")


def text(value: str) -> str:
    return value


def token(value: str) -> str:
    """A bearer token: printable ASCII without spaces, as an HTTP header carries it (a service reads
    a header's bytes as Latin-1, so a token of other characters could never match; a line break in
    a header is refused by any client). Never echoed in an error."""
    if not (value.isascii() and value.isprintable() and " " not in value):
        raise ValueError("a bearer token must be printable ASCII without spaces")
    return value


def path(value: str) -> Path:
    return Path(value)


def folder(value: str) -> Path:
    """A folder's path (made when missing): refused at start-up when a file is there, rather than at
    the first read or write as a traceback."""
    given = Path(value)
    if given.exists() and not given.is_dir():
        raise ValueError("a file, not a folder")
    return given
