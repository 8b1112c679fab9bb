"""Training a universal adversarial patch (Brown et al. 2017, "Adversarial Patch").

One patch is optimised with Adam over a set of training images and over random placements
(:func:`physadv.patch.geometry.sample_corners`), seen through an EOT distribution of the print →
photo channel (:mod:`physadv.eot`), towards a target class (or away from each image's true class),
with the non-printability score and total variation as penalties::

    loss = CE(f(t(composite(x, patch, placement))), target) + λ_nps · NPS(patch) + λ_tv · TV(patch)

(untargeted: ``−CE(…, true label)``). After each step the patch is clipped to [0, 1], as in ART's
``AdversarialPatchPyTorch``.

Every random draw of step ``k`` (which images, their placements, their channel transformations)
comes from seeds derived from ``(seed, k)`` alone, so a run interrupted after step ``k`` and resumed
from its checkpoint (the patch and Adam's state, written atomically every ``checkpoint_every`` steps)
gives the same patch as a run that was never interrupted.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from physadv.classifiers import Classifier
from physadv.eot import TransformDistribution, derive_seed
from physadv.errors import InputError
from physadv.fileio import atomic_write_bytes
from physadv.patch.geometry import SHAPES, Shape, composite, mask_fraction, sample_corners, shape_mask
from physadv.patch.printability import non_printability_score, total_variation
from physadv.validation import check_integer, check_number

MAX_PATCH_ITERATIONS = 100_000
MAX_PATCH_PX = 1024
MAX_BATCH = 4096
CHECKPOINT_EVERY = 25
"""Steps between checkpoints: a kill loses at most this many. Measured on the shared 2-core VM: a step of
16 digits images took 77 ms (load 3), so 2 s are lost at most; a step of 8 images on EfficientNet-Lite0
took 2.8 s (load 10, bench_patch.py), so 70 s. A checkpoint (the patch and Adam's two moments, under
1 MB for a 112-px patch) takes milliseconds to write."""


@dataclass(frozen=True)
class PatchConfig:
    """What a patch is trained with (every field is recorded in ``patch.json``).

    Attributes:
        target: the class the patch should make the model see; ``None``: untargeted (leave the true class).
        area: ``(low, high)`` fractions of the image the patch's shape covers, drawn uniformly; 0 < low ≤ high < 1.
        rotation: placements are rotated uniformly within ±``rotation`` degrees.
        perspective: each corner moves by up to this many half sides in x and y (0: none).
        iterations: Adam steps.
        batch: images per step (each with its own placement and channel draw).
        learning_rate: Adam's step size, in [0, 1] pixel units.
        nps_weight, tv_weight: weights of the non-printability score and the total variation.
        shape: ``square`` or ``circle``.
        patch_px: the patch's side in pixels.
        seed: seeds every draw.
    """

    target: int | None
    patch_px: int
    area: tuple[float, float] = (0.05, 0.25)
    rotation: float = 22.5
    perspective: float = 0.0
    iterations: int = 500
    batch: int = 16
    learning_rate: float = 0.05
    nps_weight: float = 0.5
    tv_weight: float = 0.5
    shape: Shape = "square"
    seed: int = 0

    def __post_init__(self) -> None:
        check_area_range(self.area, "area")
        check_number(self.rotation, 0, 180, lambda m: InputError(f"rotation must be in [0, 180] degrees: {m}"))
        check_number(self.perspective, 0, 0.9, lambda m: InputError(f"perspective must be in [0, 0.9] half sides: {m}"))
        check_integer(self.iterations, 1, MAX_PATCH_ITERATIONS, lambda m: InputError(f"iterations: {m}"))
        check_integer(self.batch, 1, MAX_BATCH, lambda m: InputError(f"batch: {m}"))
        check_number(self.learning_rate, 1e-6, 10, lambda m: InputError(f"learning rate: {m}"))
        check_number(self.nps_weight, 0, 1e4, lambda m: InputError(f"NPS weight: {m}"))
        check_number(self.tv_weight, 0, 1e4, lambda m: InputError(f"TV weight: {m}"))
        check_integer(self.patch_px, 2, MAX_PATCH_PX, lambda m: InputError(f"patch size in pixels: {m}"))
        if self.shape not in SHAPES:
            raise InputError(f"unknown patch shape {self.shape!r}; choose {' or '.join(SHAPES)}")
        check_integer(self.seed, -(2 ** 63), 2 ** 63 - 1, lambda m: InputError(f"seed: {m}"))
        if self.target is not None:
            check_integer(self.target, 0, 10 ** 6, lambda m: InputError(f"target class: {m}"))

    def record(self) -> dict:
        return {**asdict(self), "area": list(self.area)}


def check_area_range(area: tuple[float, ...], what: str) -> tuple[float, ...]:
    """Areas are fractions of the image strictly between 0 and 1 (``what`` names them in the error)."""
    for value in area:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise InputError(f"{what} {value!r}: an area is a fraction of the image, strictly between 0 and 1 "
                             "(e.g. 0.05,0.25)")
    if len(area) == 2 and area[0] > area[1]:
        raise InputError(f"{what} {area[0]:g},{area[1]:g}: the smaller area first")
    return area


@dataclass(frozen=True)
class TrainingSet:
    """The images a patch is trained on: :math:`(N, 3, H, W)` in [0, 1] and their labels :math:`(N,)`
    (``-1`` where unknown; an untargeted patch needs every label)."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class StepDraws:
    """The random draws of one step: which images, their placements, their channel transformations."""

    indices: torch.Tensor
    corners: torch.Tensor
    channel_seed: int


def step_draws(config: PatchConfig, step: int, count: int, image_size: tuple[int, int], fraction: float) -> StepDraws:
    """The draws of step ``step``, from ``(config.seed, step)`` alone."""
    generator = torch.Generator().manual_seed(derive_seed("patch-step", config.seed, step))
    indices = torch.randint(count, (config.batch,), generator=generator)
    corners = sample_corners(config.batch, image_size, config.area, config.rotation, config.perspective, fraction,
                             generator)
    return StepDraws(indices, corners, derive_seed("patch-channel", config.seed, step))


def patch_loss(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, patch: torch.Tensor,
               mask: torch.Tensor, corners: torch.Tensor, config: PatchConfig, channel: TransformDistribution,
               channel_seed: int, printable: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch and its parts (task, NPS, TV, the batch's success rate)."""
    scenes = composite(images, patch, mask, corners)
    if not channel.is_identity:
        draws = channel.sample(len(scenes), scenes.shape[1:], channel_seed).to(scenes.device)
        scenes = channel(scenes, draws.select(torch.arange(len(scenes), device=scenes.device)))
    logits = classifier(scenes).float()
    if config.target is not None:
        goal = torch.full_like(labels, config.target)
        task = F.cross_entropy(logits, goal)
        success = (logits.argmax(-1) == goal).float().mean()
    else:
        task = -F.cross_entropy(logits, labels)
        success = (logits.argmax(-1) != labels).float().mean()
    nps = non_printability_score(patch, printable, mask) if printable is not None else patch.new_zeros(())
    tv = total_variation(patch)
    loss = task + config.nps_weight * nps + config.tv_weight * tv
    return loss, {name: float(value.detach()) for name, value in (("task", task), ("nps", nps), ("tv", tv), ("success", success))}


@dataclass(frozen=True)
class TrainedPatch:
    """A trained patch :math:`(3, P, P)` in [0, 1], its mask :math:`(1, P, P)` and the last step's losses."""

    patch: torch.Tensor
    mask: torch.Tensor
    last: dict[str, float]


def _save_checkpoint(path: Path, fingerprint: str, step: int, patch: torch.Tensor,
                     optimiser: torch.optim.Optimizer, last: dict[str, float]) -> None:
    buffer = io.BytesIO()
    torch.save({"fingerprint": fingerprint, "step": step, "patch": patch.detach().cpu(),
                "optimiser": optimiser.state_dict(), "last": last}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _load_checkpoint(path: Path, fingerprint: str, config: PatchConfig) -> dict | None:
    """The checkpoint at ``path`` (``None`` when there is none); one of another run (another fingerprint) or
    with damaged contents is refused."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a checkpoint is ours, but the disk may have damaged it
        raise InputError(f"{path}: not a readable patch checkpoint ({type(error).__name__}); delete it to "
                         "start this patch again") from None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        raise InputError(f"{path.parent.parent} holds an unfinished patch made with other images or settings: re-run "
                         "that command to finish it, or choose another --out")
    patch, step = state.get("patch"), state.get("step")
    if (not isinstance(patch, torch.Tensor) or tuple(patch.shape) != (3, config.patch_px, config.patch_px)
            or not isinstance(step, int) or not 0 < step <= config.iterations
            or not torch.isfinite(patch).all() or patch.min() < 0 or patch.max() > 1):
        raise InputError(f"{path}: a damaged patch checkpoint; delete it to start this patch again")
    return state


def train_patch(classifier: Classifier, data: TrainingSet, config: PatchConfig, channel: TransformDistribution,
                printable: torch.Tensor | None = None, *, checkpoint: Path | None = None, fingerprint: str = "",
                progress: bool = False) -> TrainedPatch:
    """Train a patch (see the module doc).

    Args:
        classifier: the model under attack (left in eval mode).
        data: the training images and labels.
        config: the parameters.
        channel: EOT distribution applied to every composited image (``physadv.eot.identity()``: none).
        printable: :math:`(K, 3)` printable colours for the NPS term; ``None`` leaves NPS out.
        checkpoint: where to keep the optimiser state; a checkpoint there with the same ``fingerprint``
            is resumed.
        fingerprint: identifies the run (model, images, parameters): a checkpoint of another is refused.

    Returns:
        the patch after ``config.iterations`` steps.
    """
    classifier.eval()
    device = classifier.device
    if config.target is None and bool((data.labels < 0).any()):
        raise InputError("an untargeted patch needs the true class of every training image (name it in the "
                         "file or folder name, or pass --label)")
    if config.target is not None and config.target >= classifier.num_classes:
        raise InputError(f"target class {config.target} is not a class of {classifier.name} "
                         f"({classifier.num_classes} classes)")
    mask = shape_mask(config.shape, config.patch_px).to(device)
    fraction = mask_fraction(mask)
    patch = torch.full((3, config.patch_px, config.patch_px), 0.5, device=device, requires_grad=True)
    optimiser = torch.optim.Adam([patch], lr=config.learning_rate)
    start, last = 0, {}
    state = _load_checkpoint(checkpoint, fingerprint, config) if checkpoint is not None else None
    if state is not None:
        with torch.no_grad():
            patch.copy_(state["patch"].to(device))
        optimiser.load_state_dict(state["optimiser"])
        start, last = state["step"], dict(state["last"])
    images, labels = data.images, data.labels
    image_size = (images.shape[-2], images.shape[-1])
    printable = printable.to(device) if printable is not None else None
    with tqdm(total=config.iterations, initial=start, desc="training patch", unit="step",
              disable=None if progress else True) as bar:
        for step in range(start, config.iterations):
            draws = step_draws(config, step, len(images), image_size, fraction)
            batch = images.index_select(0, draws.indices).to(device)
            loss, last = patch_loss(classifier, batch, labels.index_select(0, draws.indices).to(device), patch, mask,
                                    draws.corners.to(device), config, channel, draws.channel_seed, printable)
            if not math.isfinite(float(loss.detach())):
                raise InputError(f"the patch loss became {float(loss)} at step {step}; lower the learning rate")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                patch.clamp_(0, 1)
            done = step + 1
            if checkpoint is not None and (done % CHECKPOINT_EVERY == 0 or done == config.iterations):
                _save_checkpoint(checkpoint, fingerprint, done, patch, optimiser, last)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", success=f"{last['success']:.2f}", refresh=False)
            bar.update()
    return TrainedPatch(patch.detach(), mask, last)
