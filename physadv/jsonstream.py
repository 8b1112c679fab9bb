"""JSON files holding one long list, written and read one item at a time.

``attack.json`` holds a record per image and ``classify --json`` prints one per image; at 50,000
images neither may be built in memory. :func:`write_json_with_list` writes exactly the text that
``json.dump(data, indent=1, allow_nan=False)`` and a newline give (what :func:`physadv.fileio.atomic_write_json`
writes), so files stay byte-identical to those of earlier versions and between 1 and N processes, while
holding one item at a time. :func:`scan_json_with_list` reads any JSON object back, decoding the items of
that list one by one with the standard library's decoder.
"""

from __future__ import annotations

import io
import json
import re
import secrets
from itertools import chain
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

from physadv.fileio import atomic_writer

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_END = object()
_LOOKAHEAD = 64
CHUNK_CHARS = 1 << 20
MAX_VALUE_CHARS = 64 << 20
"""Longest single value (one list item, or another key's value) read: longer is a corrupt file."""


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=1, allow_nan=False)


def write_json_with_list(stream: TextIO, data: dict, key: str, items: Iterable[Any]) -> int:
    """Write ``{**data, key: list(items)}`` as ``json.dump(..., indent=1, allow_nan=False)`` and a newline
    would, taking ``items`` one at a time.

    Returns:
        how many items were written.
    """
    iterator = iter(items)
    first = next(iterator, _END)
    if first is _END:
        stream.write(_dumps({**data, key: []}) + "\n")
        return 0
    # Everything around the list, as json lays it out: the list's single stand-in marks where items go.
    marker = f"physadv-items-{secrets.token_hex(16)}"
    before, after = _dumps({**data, key: [marker]}).split(json.dumps(marker))
    indent = before[before.rindex("\n") + 1:]
    stream.write(before)
    count = 0
    for item in chain([first], iterator):
        if count:
            stream.write(",\n" + indent)
        stream.write(_dumps(item).replace("\n", "\n" + indent))  # json escapes newlines inside strings
        count += 1
    stream.write(after + "\n")
    return count


def atomic_write_json_with_list(path: str | Path, data: dict, key: str, items: Iterable[Any]) -> int:
    """:func:`write_json_with_list` into ``path``, atomically (see :func:`physadv.fileio.atomic_writer`)."""
    with atomic_writer(path) as binary, io.TextIOWrapper(binary, encoding="utf-8", newline="\n") as stream:
        return write_json_with_list(stream, data, key, items)


class _Reader:
    """A JSON text read chunk by chunk: only the value being decoded is in memory."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.buffer, self.position, self.ended = stream, "", 0, False
        self.decoder = json.JSONDecoder()

    def _fill(self) -> None:
        chunk = self.stream.read(CHUNK_CHARS)
        self.ended = not chunk
        self.buffer = self.buffer[self.position:] + chunk
        self.position = 0

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end of the text)."""
        while True:
            self.position = _WHITESPACE.match(self.buffer, self.position).end()
            if self.position < len(self.buffer) or self.ended:
                return self.buffer[self.position:self.position + 1]
            self._fill()

    def expect(self, characters: str) -> str:
        found = self.peek()
        if not found or found not in characters:
            raise ValueError(f"expected {' or '.join(map(repr, characters))}, got {found or 'the end'!r}")
        self.position += 1
        return found

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.position)
                # A number cut by the chunk's end decodes short ("1.5e-07" as "1.5" before "e-"): decode
                # again with more text unless it ends well before the chunk does.
                if end + _LOOKAHEAD < len(self.buffer) or self.ended:
                    self.position = end
                    return value
            except json.JSONDecodeError:
                if self.ended:
                    raise
            except RecursionError:  # an untrusted file nested deeper than Python's parser goes
                raise ValueError("a value nested too deeply to read") from None
            if len(self.buffer) - self.position > MAX_VALUE_CHARS:
                raise ValueError(f"a value longer than {MAX_VALUE_CHARS:,} characters")
            self._fill()


def scan_json_with_list(path: str | Path, key: str) -> Iterator[tuple[str, Any]]:
    """Read the JSON object in ``path``, decoding the list at ``key`` one item at a time.

    Yields:
        ``("item", value)`` for each item of that list, in order, as it is read; then once
        ``("rest", object)``: the object with ``[]`` in place of that list.

    Raises:
        OSError, UnicodeDecodeError, ValueError (:class:`json.JSONDecodeError` included): an unreadable
            file, or one that is not a JSON object (a key repeated at its top level included).
    """
    with open(path, encoding="utf-8") as stream:
        reader = _Reader(stream)
        rest: dict[str, Any] = {}
        reader.expect("{")
        if reader.peek() == "}":
            reader.position += 1
        else:
            while True:
                name = reader.value()
                if not isinstance(name, str):
                    raise ValueError(f"expected a key, got {name!r}"[:200])
                if name in rest:
                    raise ValueError(f"key {name!r} repeats")
                reader.expect(":")
                if name == key and reader.peek() == "[":
                    reader.position += 1
                    rest[name] = []
                    if reader.peek() == "]":
                        reader.position += 1
                    else:
                        while True:
                            yield "item", reader.value()
                            if reader.expect(",]") == "]":
                                break
                else:
                    rest[name] = reader.value()
                if reader.expect(",}") == "}":
                    break
        if reader.peek():
            raise ValueError("extra data after the object")
    yield "rest", rest
