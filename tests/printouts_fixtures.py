"""Test data for the printouts tests: a small attack folder written as ``physadv attack`` would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data

from physadv.attackset import AttackedImage, AttackSet, AttackSettings, Guess, write_attack_set
from physadv.images import square_resize, write_png

SOURCES = {"chelsea": skimage.data.chelsea, "coffee": skimage.data.coffee, "astronaut": skimage.data.astronaut,
           "rocket": skimage.data.rocket}


def make_attack_dir(root: Path, names: list[str], size: int = 224, eps: float = 16.0) -> Path:
    """An attack folder as ``physadv attack`` writes it, with ±eps sign noise as the 'attack'."""
    rng = np.random.default_rng(0)
    images = []
    for name in names:
        clean = square_resize(SOURCES[name](), size)
        noise = rng.choice([-eps, eps], size=clean.shape)
        adversarial = np.clip(clean.astype(np.float64) + noise, 0, 255).astype(np.uint8)
        write_png(root / "clean" / f"{name}.png", clean)
        write_png(root / "adv" / f"{name}.png", adversarial)
        guess = (Guess(281, "tabby", 0.5),)
        images.append(AttackedImage(id=name, file=f"{name}.png", source=f"skimage:{name}", label=281,
                                    label_name="tabby", wnid=None, clean_top5=guess, adv_top5=guess, target=None,
                                    success=True, quantisation_undid=False))
    settings = AttackSettings(model="efficientnet_lite0", method="bim", eps=eps, alpha=1.0, iterations=20,
                              image_size=size, seed=0)
    write_attack_set(root, AttackSet(settings=settings, weights="test", images=tuple(images)))
    return root
