"""Exceptions for mistakes a user can fix; the CLI prints their message instead of a traceback."""


class PhysadvError(Exception):
    """A failure with a message meant for the user (bad input, missing file, missing weights)."""


class InputError(PhysadvError, ValueError):
    """Bad input: wrong shape, range, option or file."""


class WeightsNotFoundError(PhysadvError, FileNotFoundError):
    """Pretrained weights are not on this machine and cannot be downloaded."""


class PhysadvWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it in one line)."""
