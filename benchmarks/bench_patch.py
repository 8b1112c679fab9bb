"""Adversarial patch: physadv vs ART's ``AdversarialPatchPyTorch``, side by side in one run.

Both train a square targeted patch on the same model, the same training images, the same area range
(ART's ``scale`` is the patch's side relative to the image's, so ``scale = √area``), the same rotation
range and the same budget of images through the model (physadv: ``iterations × batch``; ART:
``max_iter`` passes over the training images in batches of ``batch``). Both patches are then measured
by the same held-out evaluation (:func:`physadv.patch.heldout.make_scenes`: the same held-out images,
the same recorded placements, each against noise and crop control patches of the same size and
place), and both get the mean ΔE00 to their simulated print on the lab profile's printer.

Contenders: physadv with its defaults (NPS and TV on), physadv without NPS/TV (the objective ART
optimises), ART with its defaults (Adam, learning rate 5.0) and ART with physadv's learning rate.
Times are the training alone, wall clock, in this process; ``uptime`` before and after says what else
the machine was doing. Not a test: run it by hand. Needs ART: ``pip install -e '.[bench]'``.

    python benchmarks/bench_patch.py                     # digits CNN, 300 training / 100 held-out images
    python benchmarks/bench_patch.py --model efficientnet_lite0 --images /work/shared/data/imagenet-sample \\
        --train 40 --held-out 20 --target toaster --iterations 100 --batch 8
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from dataclasses import replace
from datetime import date

import numpy as np
import torch

from physadv.capture.calibrate import measured_channel
from physadv.classifiers import load_classifier
from physadv.datasets import load_image_set, prepare
from physadv.eot import identity
from physadv.images import quantise, to_tensor, to_uint8
from physadv.patch.geometry import shape_mask
from physadv.patch.heldout import control_patches, make_scenes, result_rows
from physadv.patch.printability import (PRINTABLE_GRID_LEVELS, SIMULATED_PRINT_GRID_LEVELS, mean_delta_e00,
                                        rgb_grid, simulated_print)
from physadv.patch.train import PatchConfig, TrainingSet, train_patch
from physadv.printouts.camera import apply_colour_response


def load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def art_patch(classifier, images: torch.Tensor, target: int, config: PatchConfig, learning_rate: float,
              max_iter: int) -> torch.Tensor:
    """ART's patch :math:`(3, P, P)` in [0, 1], trained with the same areas, rotation and images."""
    from art.attacks.evasion import AdversarialPatchPyTorch
    from art.estimators.classification import PyTorchClassifier

    estimator = PyTorchClassifier(model=classifier, loss=torch.nn.CrossEntropyLoss(),
                                  input_shape=tuple(images.shape[1:]), nb_classes=classifier.num_classes,
                                  clip_values=(0.0, 1.0), channels_first=True, device_type="cpu")
    attack = AdversarialPatchPyTorch(
        estimator, rotation_max=config.rotation, scale_min=math.sqrt(config.area[0]),
        scale_max=math.sqrt(config.area[1]), learning_rate=learning_rate, max_iter=max_iter, batch_size=config.batch,
        patch_shape=(3, config.patch_px, config.patch_px), patch_type="square", targeted=True, verbose=False)
    targets = np.eye(classifier.num_classes, dtype=np.float32)[np.full(len(images), target)]
    patch, _ = attack.generate(x=images.numpy(), y=targets)
    return torch.from_numpy(np.asarray(patch, dtype=np.float32)).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="digits")
    parser.add_argument("--images", default=None, help="default: digits for the digits model, else samples")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--target", default="3")
    parser.add_argument("--area", default="0.05,0.25")
    parser.add_argument("--eval-areas", default="0.05,0.15,0.25")
    parser.add_argument("--rotation", type=float, default=22.5)
    parser.add_argument("--iterations", type=int, default=500, help="physadv's Adam steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))

    classifier = load_classifier(args.model)
    target = classifier.labels.index(args.target)
    images = prepare(load_image_set(args.images or ("digits" if args.model == "digits" else "samples"),
                                    classifier.labels), classifier.image_size)
    order = np.random.default_rng(args.seed).permutation(len(images))
    training = [images[k] for k in order[:args.train]]
    held_out = [images[k] for k in order[args.train:args.train + args.held_out] if images[k].label != target]
    area = tuple(float(v) for v in args.area.split(","))
    areas = [float(v) for v in args.eval_areas.split(",")]
    patch_px = round(math.sqrt(area[1]) * classifier.image_size)
    data = TrainingSet(to_tensor([i.image for i in training]), torch.tensor([-1 if i.label is None else i.label
                                                                             for i in training]))
    measured = measured_channel("lab")
    printable = torch.from_numpy(apply_colour_response(rgb_grid(PRINTABLE_GRID_LEVELS).numpy() * 255, measured)
                                 / 255).float()
    gamut = apply_colour_response(rgb_grid(SIMULATED_PRINT_GRID_LEVELS).numpy() * 255, measured)
    ours = PatchConfig(target=target, patch_px=patch_px, area=area, rotation=args.rotation,
                       iterations=args.iterations, batch=args.batch, seed=args.seed)
    bare = PatchConfig(**{**ours.record(), "area": area, "nps_weight": 0.0, "tv_weight": 0.0})
    # The same number of images through the model: ART's max_iter is a number of passes over the training set.
    max_iter = max(1, round(args.iterations * args.batch / len(training)))

    def seeded_art(learning_rate: float, passes: int = max_iter):
        def run() -> torch.Tensor:
            np.random.seed(args.seed)  # ART draws its placements from NumPy's and torch's global generators
            torch.manual_seed(args.seed)
            return art_patch(classifier, data.images, target, ours, learning_rate, passes)
        return run

    # Warm-up: lazy imports (torch's optimisers load torch._dynamo on first use) are not training time.
    train_patch(classifier, TrainingSet(data.images[:2], data.labels[:2]), replace(ours, iterations=1), identity())
    seeded_art(5.0, 1)()

    contenders = {
        "physadv (defaults: NPS 5, TV 0.5)": lambda: train_patch(classifier, data, ours, identity(), printable).patch,
        "physadv, no NPS/TV": lambda: train_patch(classifier, data, bare, identity(), printable).patch,
        "ART AdversarialPatchPyTorch (lr 5.0, its default)": seeded_art(5.0),
        f"ART AdversarialPatchPyTorch (lr {ours.learning_rate:g})": seeded_art(ours.learning_rate),
    }
    evaluation = to_tensor([i.image for i in held_out])
    controls = control_patches(patch_px, data.images, data.labels, target, args.seed)
    mask = shape_mask("square", patch_px)
    print(f"{date.today()}, {platform.node()}: {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads; "
          f"load before {load()}")
    print(f"model {classifier.name}, target {classifier.labels.name(target)}, {len(training)} training images, "
          f"{len(held_out)} held-out images (not of the target class), areas {area[0]:g}–{area[1]:g}, rotation "
          f"±{args.rotation:g}°, {args.iterations} × {args.batch} images (physadv) = {max_iter} passes over "
          f"{len(training)} (ART), square patch of {patch_px} px")
    header = "".join(f"{'area ' + format(a, 'g'):>18}" for a in areas)
    print(f"{'contender':<52}{'train s':>9}{header}{'ΔE00 print':>12}")
    for name, run in contenders.items():
        start = time.perf_counter()
        patch = quantise(run()[None].cpu())[0]
        seconds = time.perf_counter() - start
        scenes = make_scenes(classifier, evaluation, [i.id for i in held_out], patch, controls, mask, areas, ours)
        rows = result_rows(scenes, [i.label for i in held_out], target)
        cells = ""
        for area_value in areas:
            here = {(r["control"] or r["kind"]): r for r in rows if r["area"] == area_value}
            cells += f"{here['patch']['target_success']:>8.2f} ({here['noise']['target_success']:.2f}/" \
                     f"{here['crop']['target_success']:.2f})"
        levels = to_uint8(patch[None])[0].astype(np.float64)
        print(f"{name:<52}{seconds:>9.1f}{cells}{mean_delta_e00(levels, simulated_print(levels, gamut)):>12.2f}",
              flush=True)
    print(f"held-out targeted success of the patch (noise control / crop control) per area; load after {load()}")


if __name__ == "__main__":
    main()
