"""Held-out success of a patch, against control patches of the same size and placement.

Covering part of an image changes what a model sees whatever the patch shows, so a patch's success
is only what it achieves beyond an innocent patch in the same place. Each held-out image gets, per
area, one recorded placement; four scenes are made there:

- ``clean``: the image itself (no patch);
- ``patch``: the adversarial patch;
- ``noise``: a control patch of uniform random noise (seeded);
- ``crop``: a control patch cut from a natural image (a training image, seeded).

Every scene is rounded to 8 bits (the image that is saved and printed) and classified. Success is
``top-1 = target`` for a targeted patch (held-out images of the target class are left out: they would
succeed with no patch) and ``top-1 ≠ true class`` for an untargeted one.

Shape:
    - Images: :math:`(N, 3, H, W)` in [0, 1]; patches :math:`(3, P, P)`; mask :math:`(1, P, P)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from physadv.classifiers import Classifier
from physadv.eot import derive_seed
from physadv.images import quantise, to_uint8
from physadv.patch.geometry import composite, mask_fraction, sample_corners
from physadv.patch.train import PatchConfig
from physadv.results import PATCH_CONTROLS as CONTROLS
from physadv.results import PATCH_VARIANTS as VARIANTS
from physadv.results import variant_kind


@dataclass(frozen=True)
class ControlPatches:
    """The control patches :math:`(3, P, P)` on 8-bit levels, and where the crop came from."""

    noise: torch.Tensor
    crop: torch.Tensor
    crop_image: int
    crop_box: tuple[int, int, int]  # x, y, side in the source image's pixels


def control_patches(patch_px: int, images: torch.Tensor, labels: torch.Tensor, target: int | None,
                    seed: int) -> ControlPatches:
    """Seeded control patches: uniform noise, and a square crop of one of ``images`` (resized to
    ``patch_px`` when the image is smaller than that), never of an image of the ``target`` class (a
    crop of one could show the target itself) unless all are."""
    noise = torch.rand(3, patch_px, patch_px, generator=torch.Generator().manual_seed(derive_seed("control-noise", seed)))
    generator = torch.Generator().manual_seed(derive_seed("control-crop", seed))
    candidates = torch.nonzero(labels != target).flatten() if target is not None else torch.arange(len(images))
    candidates = candidates if len(candidates) else torch.arange(len(images))
    index = int(candidates[int(torch.randint(len(candidates), (1,), generator=generator))])
    height, width = images.shape[-2:]
    side = min(patch_px, height, width)
    x = int(torch.randint(width - side + 1, (1,), generator=generator))
    y = int(torch.randint(height - side + 1, (1,), generator=generator))
    crop = images[index, :, y:y + side, x:x + side].cpu()
    if side != patch_px:
        crop = F.interpolate(crop[None], size=(patch_px, patch_px), mode="bilinear", align_corners=False)[0]
    return ControlPatches(quantise(noise[None])[0], quantise(crop.clamp(0, 1)[None])[0], index, (x, y, side))


def held_out_corners(image_id: str, area: float, config: PatchConfig, image_size: tuple[int, int],
                     fraction: float) -> torch.Tensor:
    """The recorded placement :math:`(4, 2)` of the patch on held-out image ``image_id`` at ``area``:
    seeded by the run's seed, the image and the area only (disjoint from the training draws)."""
    generator = torch.Generator().manual_seed(derive_seed("held-out", config.seed, image_id, float(area)))
    return sample_corners(1, image_size, (area, area), config.rotation, config.perspective, fraction, generator)[0]


@dataclass(frozen=True)
class Scene:
    """One held-out image at one area: the placement and, per variant, the 8-bit scene and its top-1."""

    image: int
    area: float
    corners: torch.Tensor
    pixels: dict[str, np.ndarray]
    top1: dict[str, int]


def success(top1: int, label: int | None, target: int | None) -> bool | None:
    """Whether a prediction meets the patch's goal (``None``: untargeted and the true class is unknown)."""
    if target is not None:
        return top1 == target
    return None if label is None else top1 != label


@torch.no_grad()
def make_scenes(classifier: Classifier, images: torch.Tensor, ids: list[str], patch: torch.Tensor,
                controls: ControlPatches, mask: torch.Tensor, areas: list[float], config: PatchConfig,
                batch_size: int = 64) -> list[Scene]:
    """Every held-out image at every area with the four variants, rounded to 8 bits and classified."""
    device = classifier.device
    fraction = mask_fraction(mask)
    image_size = (images.shape[-2], images.shape[-1])
    layers = {"patch": patch, "noise": controls.noise, "crop": controls.crop}
    jobs = [(index, area) for area in areas for index in range(len(images))]
    scenes = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        batch = torch.stack([images[index] for index, _ in chunk]).to(device)
        corners = torch.stack([held_out_corners(ids[index], area, config, image_size, fraction) for index, area in chunk])
        made = {"clean": quantise(batch)}
        for variant, layer in layers.items():
            made[variant] = quantise(composite(batch, layer.to(device), mask.to(device), corners.to(device)))
        top1 = {variant: classifier(scene).argmax(-1).tolist() for variant, scene in made.items()}
        pixels = {variant: to_uint8(scene) for variant, scene in made.items()}
        for k, (index, area) in enumerate(chunk):
            scenes.append(Scene(index, area, corners[k], {v: pixels[v][k] for v in VARIANTS},
                                {v: int(top1[v][k]) for v in VARIANTS}))
    return scenes


def result_rows(scenes: list[Scene], labels: list[int | None], target: int | None) -> list[dict]:
    """Per variant and area: ``n``, ``target_success`` (the goal's success rate) and ``top1`` (accuracy
    on the images with a known true class; ``None`` when there are none), with ``kind`` and ``control``."""
    rows = []
    for area in sorted({scene.area for scene in scenes}):
        here = [scene for scene in scenes if scene.area == area]
        for variant in VARIANTS:
            hits = [success(s.top1[variant], labels[s.image], target) for s in here]
            hits = [h for h in hits if h is not None]
            known = [s for s in here if labels[s.image] is not None]
            rows.append({"kind": variant_kind(variant), "control": variant if variant in CONTROLS else None,
                         "area": area, "n": len(hits), "target_success": sum(hits) / len(hits) if hits else None,
                         "top1": (sum(s.top1[variant] == labels[s.image] for s in known) / len(known)
                                  if known else None), "top1_n": len(known)})
    return rows
