"""Atomic file writes (a reader, or a re-run after a crash, never sees a half-written file), parsing
of untrusted JSON and TOML text, file hashes and physadv's cache folder."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sys
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside ``path``, created with mode 0o666 so the OS applies the user's umask (as for
    any plain ``open``; ``tempfile.mkstemp`` would make it owner-only), without reading or changing it."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary
        except FileExistsError:
            continue


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """A binary stream whose bytes appear at ``path`` all at once when the block ends without an
    error (a temporary file in the same folder, then an atomic rename); on an error, nothing changes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _create_temporary(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    with atomic_writer(path) as stream:
        stream.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


TOO_LONG_NUMBER = "a whole number too long to read"
"""Python refuses to convert integers of more than ``sys.get_int_max_str_digits()`` (4,300) digits, with
a ``ValueError`` of its own: no field of ours holds one, so the document is malformed."""


def parse_json(text: str) -> Any:
    """``json.loads``, but a document nested too deeply for Python's parser, or holding a number of
    thousands of digits, is a malformed document (:class:`json.JSONDecodeError`) rather than a
    ``RecursionError`` or a bare ``ValueError``: files are untrusted input."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read", text, 0) from None
    except json.JSONDecodeError:
        raise
    except ValueError:  # int() past the digit limit
        digits = re.search(rf"\d{{{sys.get_int_max_str_digits() + 1},}}", text)
        raise json.JSONDecodeError(TOO_LONG_NUMBER, text, digits.start() if digits else 0) from None


def parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads``, with too-deep nesting or a number of thousands of digits a
    :class:`tomllib.TOMLDecodeError` (see :func:`parse_json`)."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("nested too deeply to read") from None
    except tomllib.TOMLDecodeError:
        raise
    except ValueError:
        raise tomllib.TOMLDecodeError(TOO_LONG_NUMBER) from None


def cache_dir() -> Path:
    """Where physadv keeps what it builds (trained weights, fitted profiles): ``$PHYSADV_HOME``, else
    ``$XDG_CACHE_HOME/physadv``."""
    if os.environ.get("PHYSADV_HOME"):
        return Path(os.environ["PHYSADV_HOME"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "physadv"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
