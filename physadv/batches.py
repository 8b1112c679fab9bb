"""The one batch loop of every resumable, sharded job (attack, experiment, classify).

A job over an image set is cut into fixed batches (batch ``k`` is always images ``k·batch_size …``,
:func:`physadv.datasets.batch_slice`), so its outputs do not depend on how the work was split or
resumed. :func:`run_batches` runs it in three steps:

1. ``pending``, on rank 0 alone (:meth:`~physadv.distributed.Shard.agree`): which batches are left (a
   resumable job reads what its output folder holds; a refusal is raised on every rank);
2. ``work``, on every rank for its share of them (:meth:`~physadv.distributed.Shard.mine`), with the
   batch's pixels read by ``workers`` processes and one progress bar for the whole group;
3. ``merge``, on rank 0 alone, of what every rank's ``work`` returned (a job that keeps its batches on disk,
   so that a kill anywhere loses at most the batches in flight, merges its files and returns nothing from
   ``work``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import torch

from physadv.datasets import ImageRef, image_batches
from physadv.distributed import SINGLE, Shard

Done = TypeVar("Done")
Merged = TypeVar("Merged")


@dataclass(frozen=True)
class PendingBatch:
    """A batch still to do: its number, how much of the progress bar it fills (e.g. images × attacks)
    and what is left of it (``todo``, e.g. the attacks it still needs; picklable)."""

    number: int
    amount: int
    todo: Any = None


def run_batches(pending: Callable[[], Sequence[PendingBatch]], work: Callable[[PendingBatch, torch.Tensor], Done],
                merge: Callable[[list[Done]], Merged], *, images: Sequence[ImageRef], image_size: int,
                batch_size: int, shard: Shard = SINGLE, workers: int = 0, progress: bool = True,
                total: int | None = None, share: bool = True, **bar: Any) -> Merged | None:
    """Do the batches ``pending`` lists with ``work`` and ``merge`` what it returned; every rank of ``shard``
    must call this.

    Args:
        pending: the batches left, in order (run on rank 0; its value or error reaches every rank).
        work: ``(batch, pixels (B, image_size, image_size, 3) uint8) → value`` on this rank's share; an error
            in it is this rank's own (:meth:`~physadv.distributed.Shard.own_share`).
        merge: every batch's value, in batch order (run on rank 0 after all ranks finished).
        images: the whole image set; ``image_size`` and ``batch_size`` cut it (:func:`image_batches`).
        total: the progress bar's total when the job is larger than what is pending (a resumed job):
            the rest counts as done. Default: the pending amounts.
        share: send ``merge``'s value (picklable) to every rank; otherwise only rank 0 gets it, the others ``None``.
        bar: tqdm options (``desc``, ``unit``).

    Returns:
        ``merge``'s value.
    """
    batches = shard.agree(lambda: list(pending()))
    amounts = [batch.amount for batch in batches]
    mine = shard.mine(batches)
    done: list[tuple[int, Done]] = []
    total = sum(amounts) if total is None else total
    with shard.progress(total=total, initial=total - sum(amounts), progress=progress, **bar) as progress_bar, \
            shard.own_share():
        for round_amount, batch, (_, pixels) in zip(shard.round_totals(amounts), mine, image_batches(
                images, image_size, batch_size, [batch.number for batch in mine], workers)):
            done.append((batch.number, work(batch, pixels)))
            progress_bar.update(round_amount)
    # The gather is also the barrier: no rank merges before every rank has finished its share.
    everyone = sorted((item for part in shard.gather(done) for item in part), key=lambda item: item[0])
    return shard.agree(lambda: merge([value for _, value in everyone]), share=share)
