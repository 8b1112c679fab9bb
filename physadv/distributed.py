"""Work split across the processes ``torchrun`` starts (one per GPU, on one or several machines).

``torchrun --nproc-per-node N -m physadv VERB ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`process_group` joins the group with :mod:`torch.distributed` (NCCL on ``cuda:LOCAL_RANK``,
gloo on the CPU). Batches are dealt round-robin to the ranks (:meth:`Shard.mine`), each rank writes
its own partial outputs, and rank 0 merges them once every rank has finished
(:func:`physadv.batches.run_batches`). Without ``torchrun`` everything runs as rank 0 of 1, through
the same code.

A mistake is reported once, in one line (:func:`physadv.errors.reported_here`). What rank 0 checks
alone (the output folder, the run's lock, the merge) goes through :meth:`Shard.agree`, which raises its
error on every rank; an error that every rank meets on the same input is printed by the first process
of each machine only; an error in one rank's own share of the work (:meth:`Shard.own_share`) by that
rank; and a rank left waiting on one that stopped raises :class:`RankStoppedError`, not the
collective's traceback.
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from physadv.errors import OWN_ERROR, InputError, PhysadvError

T = TypeVar("T")

# Ranks wait for each other at barriers; shards are balanced to a batch, so a long wait means a rank is
# stuck, but a slow first batch (weights loading, cuDNN autotuning) must not trip it.
BARRIER_TIMEOUT = timedelta(hours=1)

MAX_WORLD_SIZE = 65_536
"""More processes than any torchrun group physadv's work could use (one per GPU); a larger WORLD_SIZE is a typo."""

STOPPED = ("another process of this torchrun group stopped (its own message, if it printed one, and torchrun's "
           "summary say why); attack and experiment keep the batches they finished: re-run the same command to resume")


class RankStoppedError(PhysadvError):
    """Another process of the group stopped (failed or was killed) while this one waited for it."""


@contextmanager
def _collective() -> Iterator[None]:
    # A peer that exited closes its connections: the collective then raises a RuntimeError (torch's
    # DistError is one) on every waiting rank, though the failure is the peer's and told by it.
    try:
        yield
    except RuntimeError as error:
        raise RankStoppedError(STOPPED) from error


def _own(error: Exception) -> Exception:
    """``error``, marked as this rank's alone: it prints it (:func:`physadv.errors.reported_here`)."""
    setattr(error, OWN_ERROR, True)
    return error


def _shared_class(error: Exception) -> type[PhysadvError]:
    """The class the other ranks raise for rank 0's ``error``: its own if it is one of physadv's (pickled
    by name), else :class:`PhysadvError` (exit status 1, as for an ``OSError`` or a bug on rank 0)."""
    kind = type(error)
    if issubclass(kind, PhysadvError) and kind.__module__.startswith("physadv.") and "<" not in kind.__qualname__:
        return kind
    return InputError if isinstance(error, InputError) else PhysadvError


@dataclass(frozen=True)
class Shard:
    """This process's place among the ``world_size`` processes of one command."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: it merges the partial outputs, writes the final files and shows progress."""
        return self.rank == 0

    def mine(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: every ``world_size``-th, starting at ``rank`` (deterministic)."""
        return list(items[self.rank::self.world_size])

    def round_totals(self, sizes: Sequence[int]) -> list[int]:
        """Per round of :meth:`mine` (one item per rank), the sum of ``sizes`` over all ranks: what a
        progress bar on rank 0 adds after each of its own items."""
        return [sum(sizes[start:start + self.world_size]) for start in range(0, len(sizes), self.world_size)]

    def progress(self, progress: bool = True, **options: Any) -> tqdm:
        """A tqdm bar for the whole group's work, shown by rank 0 only."""
        return tqdm(disable=not (progress and self.is_main), **options)

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (picklable), on every rank."""
        if self.world_size == 1:
            return value
        box = [value if self.is_main else None]
        with _collective():
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if self.world_size == 1:
            return [value]
        values: list[Any] = [None] * self.world_size
        with _collective():
            dist.all_gather_object(values, value)
        return values

    def agree(self, check: Callable[[], T], share: bool = True) -> T | None:
        """Run ``check`` on rank 0 alone and tell every rank how it went: its value, or its error.

        For what rank 0 does by itself while the others wait (refusing an output folder of another
        attack, taking the run's lock, merging the parts): an error is raised on every rank, not only
        on rank 0 with the others failing later on a connection it closed. Rank 0 raises its own
        exception; the others an error of the same physadv class and message (:func:`_shared_class`),
        which the CLI leaves to rank 0 to print.

        Args:
            share: send ``check``'s value (picklable) to every rank; otherwise it stays on rank 0 (a
                lock, an open store) and the others get ``None``.
        """
        if self.world_size == 1:
            return check()
        if not self.is_main:
            verdict = self.broadcast(None)
            if verdict[0] == "error":
                raise verdict[1](verdict[2])
            return verdict[1]
        try:
            value = check()
        except Exception as error:
            try:
                self.broadcast(("error", _shared_class(error), str(error)))
            except RankStoppedError:
                pass  # the others are gone already: rank 0's own error is the one to report
            raise
        self.broadcast(("ok", value if share else None))
        return value

    @contextmanager
    def own_share(self) -> Iterator[None]:
        """Work on this rank's share alone (:meth:`mine`), between collectives. Only this rank knows of
        an error raised in it, so the error is marked to be reported here, not left to rank 0
        (:func:`physadv.errors.reported_here`)."""
        try:
            yield
        except Exception as error:
            raise _own(error)


SINGLE = Shard()


TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What ``torchrun`` sets for every process it starts; with ``WORLD_SIZE`` > 1 the rest must all be there."""


def _environment_int(name: str, low: int, high: int) -> int:
    text = os.environ[name]
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"environment variable {name}={text[:40]!r} is not a whole number (set by torchrun)") from None
    if not low <= value <= high:
        raise InputError(f"environment variable {name}={value} is outside {low}..{high}"
                         + (f" (WORLD_SIZE={high + 1}: the ranks are 0..{high})" if name == "RANK" else ""))
    return value


def torchrun_group() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the variables ``torchrun`` sets (``(0, 1, 0)`` without them),
    checked before joining: a rank outside the group, or a missing rendezvous address, would otherwise
    wait for peers that never come, or fail with torch's traceback."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    try:
        world_size = _environment_int("WORLD_SIZE", 1, MAX_WORLD_SIZE)
        if world_size == 1:
            return 0, 1, 0
        missing = [name for name in TORCHRUN_VARIABLES if not os.environ.get(name, "").strip()]
        if missing:
            raise InputError(f"WORLD_SIZE={world_size} asks for a torchrun group, but {', '.join(missing)} "
                             f"{'is' if len(missing) == 1 else 'are'} not set: start physadv with torchrun (it "
                             f"sets {', '.join(TORCHRUN_VARIABLES)}), or unset WORLD_SIZE to run one process")
        rank = _environment_int("RANK", 0, world_size - 1)
        local_rank = _environment_int("LOCAL_RANK", 0, world_size - 1)
        _environment_int("MASTER_PORT", 1, 65_535)
    except InputError as error:
        raise _own(error)  # each process has its own environment: each says what is wrong with it
    return rank, world_size, local_rank


@contextmanager
def process_group(device: torch.device) -> Iterator[tuple[Shard, torch.device]]:
    """Join the process group ``torchrun`` describes in the environment, if any, for one command.

    Args:
        device: the device asked for; under ``torchrun`` a CUDA device becomes ``cuda:LOCAL_RANK``.

    Yields:
        ``(shard, device)`` of this process; ``(SINGLE, device)`` when not started by ``torchrun``.

    After an error the process leaves the group only as it exits (one command per process).
    """
    rank, world_size, local_rank = torchrun_group()
    if world_size == 1:
        yield SINGLE, device
        return
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():  # on this machine only
            raise _own(InputError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA "
                                  "device(s); start at most that many processes per node (--nproc-per-node)"))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    # NCCL only moves CUDA tensors; object collectives and barriers on CPU ranks need gloo.
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=BARRIER_TIMEOUT,
                            device_id=device if device.type == "cuda" else None)
    try:
        yield Shard(rank, world_size), device
    except BaseException:
        # Leave the group at exit, once the command has reported the error: leaving now closes the
        # connections the other ranks wait on, so they fail first and torchrun may stop this process
        # before it says why.
        atexit.register(dist.destroy_process_group)
        raise
    dist.destroy_process_group()
