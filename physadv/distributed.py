"""Work split across the processes ``torchrun`` starts (one per GPU, on one or several machines).

``torchrun --nproc-per-node N -m physadv VERB ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`process_group` joins the group with :mod:`torch.distributed` (NCCL on ``cuda:LOCAL_RANK``,
gloo on the CPU). Batches are dealt round-robin to the ranks (:meth:`Shard.mine`), each rank writes
its own partial outputs, and rank 0 merges them after a :meth:`Shard.barrier`. Without ``torchrun``
everything runs as rank 0 of 1, through the same code.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from physadv.errors import InputError

T = TypeVar("T")

# Ranks wait for each other at barriers; shards are balanced to a batch, so a long wait means a rank is
# stuck, but a slow first batch (weights loading, cuDNN autotuning) must not trip it.
BARRIER_TIMEOUT = timedelta(hours=1)


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

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (picklable), on every rank."""
        if self.world_size == 1:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if self.world_size == 1:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values


SINGLE = Shard()


def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name, str(default))
    try:
        return int(text)
    except ValueError:
        raise InputError(f"environment variable {name}={text!r} is not a whole number (set by torchrun)") from None


def launched_as_main() -> bool:
    """Whether this process is rank 0 (or not under ``torchrun``), known before joining the group, so
    that rank 0 can take a run's lock before anything slow happens."""
    return _environment_int("RANK", 0) == 0


@contextmanager
def process_group(device: torch.device) -> Iterator[tuple[Shard, torch.device]]:
    """Join the process group ``torchrun`` describes in the environment, if any, for one command.

    Args:
        device: the device asked for; under ``torchrun`` a CUDA device becomes ``cuda:LOCAL_RANK``.

    Yields:
        ``(shard, device)`` of this process; ``(SINGLE, device)`` when not started by ``torchrun``.
    """
    world_size = _environment_int("WORLD_SIZE", 1)
    if world_size <= 1:
        yield SINGLE, device
        return
    rank, local_rank = _environment_int("RANK", 0), _environment_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InputError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s); "
                             "start at most that many processes per node (--nproc-per-node)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    # NCCL only moves CUDA tensors; object collectives and barriers on CPU ranks need gloo.
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=BARRIER_TIMEOUT,
                            device_id=device if device.type == "cuda" else None)
    try:
        yield Shard(rank, world_size), device
    finally:
        dist.destroy_process_group()
