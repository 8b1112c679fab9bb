"""Reading untrusted records: manifests, attack records, configurations, profiles, state files.

These files travel between machines and people, so every field is checked on read: its type, its
range, that numbers are finite, that sizes are capped, and that anything that may become part of a
path is a plain name from a safe character set. Every error names the file and the field, e.g.
``sheets/manifest.json: pages[0].cells[3].box_mm: expected 4 numbers, got 2``.

Example:
    >>> record = Record({"eps": 16, "kind": "clean"}, "attack.json")
    >>> record.number("eps", 0, 255), record.choice("kind", ("clean", "adversarial"))
    (16.0, 'clean')
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterator, Sequence, TypeVar

from physadv.errors import InputError

T = TypeVar("T")

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
"""A name that may become a file or folder name: no separators, no leading dot, at most 128 characters."""

MAX_SEED = 2**63 - 1
"""Every seed, given as an option or read back from a record, is a whole number in 0..MAX_SEED: numpy's
generators refuse negative seeds, and 63 bits fit the signed 64-bit integers of SQLite and JSON readers."""

MAX_CLASSES = 1_000_000
"""Largest class count a record may name (ImageNet-21k has 21,841 classes)."""

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
"""Never part of a text field physadv writes (names, sources, payloads); a NUL would also break any path."""

MAX_TEXT = 4096
"""Longest free-text field accepted (sources, names); longer text is a corrupt or hostile file."""


PLAIN_NAME_RULE = ("letters, digits, '.', '_', '+', '-'; no path separators, no leading dot, "
                   "at most 128 characters")
"""What :data:`SAFE_NAME` allows, in the words of every error that refuses a name."""


def is_safe_name(text: object) -> bool:
    return isinstance(text, str) and SAFE_NAME.fullmatch(text) is not None and ".." not in text


SEED_RULE = "a whole number in 0..2**63 - 1"
"""What :data:`MAX_SEED` allows, in the words of every error that refuses a seed."""


def is_seed(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED


def check_seed(value: object, what: str = "seed") -> int:
    """``value`` if it is a seed (:data:`SEED_RULE`, the one rule of every verb and record)."""
    if not is_seed(value):
        raise InputError(f"{what} must be {SEED_RULE}, got {value!r}"[:200])
    return value


def check_run_id(run_id: object) -> str:
    """``run_id`` if it is a run id: a plain name (:data:`SAFE_NAME`), as every manifest's is read back; it
    goes into marker ids, QR codes, PDF titles and the names of the files of a run."""
    if not is_safe_name(run_id):
        shown = repr(run_id[:40] + "…" if isinstance(run_id, str) and len(run_id) > 40 else run_id)
        raise InputError(f"run id {shown} is not a plain name ({PLAIN_NAME_RULE})")
    return run_id


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


class Record:
    """Checked access to one JSON/TOML object read from a file.

    Args:
        data: the parsed object (anything: a non-object is an error).
        where: the file and field path used in error messages.
        error: the exception raised (an :class:`InputError` subclass).
    """

    def __init__(self, data: Any, where: str, error: type[InputError] = InputError) -> None:
        if not isinstance(data, dict):
            raise error(f"{where}: expected an object, got {_type_name(data)}")
        self.data, self.where, self.error = data, where, error

    def fail(self, key: str | None, message: str) -> InputError:
        return self.error(f"{self.where}{'.' + key if key else ''}: {message}")

    def only(self, allowed: Sequence[str], what: str = "key") -> None:
        """Refuse keys other than ``allowed`` (a misspelt key is an error, never silently ignored)."""
        unknown = sorted(map(str, set(self.data) - set(allowed)))
        if unknown:
            raise self.fail(None, f"unknown {what}(s) {', '.join(map(repr, unknown))} "
                                  f"(known: {', '.join(sorted(allowed))})")

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, optional: bool) -> Any:
        if key not in self.data:
            if optional:
                return None
            raise self.fail(key, "missing")
        return self.data[key]

    def integer(self, key: str, low: int, high: int, optional: bool = False) -> int | None:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        return check_integer(value, low, high, lambda m: self.fail(key, m))

    def number(self, key: str, low: float, high: float, optional: bool = False) -> float | None:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        return check_number(value, low, high, lambda m: self.fail(key, m))

    def boolean(self, key: str) -> bool:
        value = self._get(key, False)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_type_name(value)}")
        return value

    def text(self, key: str, optional: bool = False, max_length: int = MAX_TEXT) -> str | None:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"expected text, got {_type_name(value)}")
        if len(value) > max_length:
            raise self.fail(key, f"text longer than {max_length} characters")
        if CONTROL_CHARACTERS.search(value):
            raise self.fail(key, f"{value!r} contains a control character"[:300])
        return value

    def name(self, key: str, optional: bool = False) -> str | None:
        """A safe name (see :data:`SAFE_NAME`): it may become a file or folder name."""
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if not is_safe_name(value):
            raise self.fail(key, f"{value!r} is not a plain name ({PLAIN_NAME_RULE})")
        return value

    def choice(self, key: str, choices: Sequence[T], optional: bool = False) -> T | None:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if value not in choices or isinstance(value, bool):
            raise self.fail(key, f"{value!r} is not one of {', '.join(map(repr, choices))}")
        return value

    def numbers(self, key: str, count: int, low: float, high: float) -> tuple[float, ...]:
        values = self.items(key, count, count)
        return tuple(check_number(v, low, high, lambda m, i=i: self.fail(f"{key}[{i}]", m))
                     for i, v in enumerate(values))

    def integers(self, key: str, count: int, low: int, high: int) -> tuple[int, ...]:
        values = self.items(key, count, count)
        return tuple(check_integer(v, low, high, lambda m, i=i: self.fail(f"{key}[{i}]", m))
                     for i, v in enumerate(values))

    def items(self, key: str, minimum: int, maximum: int) -> list:
        value = self._get(key, False)
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {_type_name(value)}")
        if not minimum <= len(value) <= maximum:
            expected = f"{minimum}" if minimum == maximum else f"{minimum} to {maximum}"
            raise self.fail(key, f"expected {expected} items, got {len(value)}")
        return value

    def records(self, key: str, minimum: int, maximum: int) -> Iterator["Record"]:
        """The objects of the list at ``key``, each a :class:`Record`."""
        for index, item in enumerate(self.items(key, minimum, maximum)):
            yield Record(item, f"{self.where}.{key}[{index}]", self.error)

    def record(self, key: str, optional: bool = False) -> "Record | None":
        value = self._get(key, optional)
        if value is None and optional:
            return None
        return Record(value, f"{self.where}.{key}", self.error)


def check_integer(value: Any, low: int, high: int, fail: Callable[[str], InputError]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"expected a whole number, got {_type_name(value)} {value!r}"[:200])
    if not low <= value <= high:
        shown = value if value.bit_length() <= 128 else f"a {value.bit_length()}-bit whole number"
        raise fail(f"{shown} is outside [{low}, {high}]")
    return value


def check_number(value: Any, low: float, high: float, fail: Callable[[str], InputError]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"expected a number, got {_type_name(value)} {value!r}"[:200])
    if isinstance(value, int) and value.bit_length() > 1000:  # no float holds it (math.isfinite would overflow)
        raise fail(f"expected a finite number, got a {value.bit_length()}-bit whole number")
    if not math.isfinite(value):
        raise fail(f"expected a finite number, got {value!r}")
    if not low <= value <= high:
        raise fail(f"{value:g} is outside [{low:g}, {high:g}]")
    return float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
