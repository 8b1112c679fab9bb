"""Exceptions for mistakes a user can fix; the CLI prints their message instead of a traceback, from
one process of a ``torchrun`` group (:func:`reported_here`)."""

from __future__ import annotations

import os

# The attribute marking an exception that one rank of a torchrun group raised alone, in its own share of
# the work (physadv.distributed.Shard.own_share): the others cannot know of it, so that rank reports it.
OWN_ERROR = "physadv_own_error"


class PhysadvError(Exception):
    """A failure with a message meant for the user (bad input, missing file, missing weights)."""


class InputError(PhysadvError, ValueError):
    """Bad input: wrong shape, range, option or file."""


class WeightsNotFoundError(PhysadvError, FileNotFoundError):
    """Pretrained weights are not on this machine and cannot be downloaded."""


class PhysadvWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it in one line)."""


def reported_here(error: BaseException | None = None) -> bool:
    """Whether this process prints ``error`` (``None``: a mistake every rank makes, a bad option).

    Under ``torchrun`` the ranks mostly fail together, on the same input or on an error rank 0 found
    and shared (``Shard.agree``), so the first process of each machine (``LOCAL_RANK`` 0: rank 0 on
    one machine) prints it, once on that machine's torchrun output; another process prints only an
    error of its own (:data:`OWN_ERROR`). Read from the environment, so that deciding does not import torch.
    """
    try:
        # Not under torchrun (one process): a LOCAL_RANK another launcher left in the environment is not ours.
        first = (int(os.environ.get("WORLD_SIZE", "1")) <= 1
                 or int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0"))) == 0)
    except ValueError:  # a malformed variable is itself the error to print
        first = True
    return first or getattr(error, OWN_ERROR, False)
