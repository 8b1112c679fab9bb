"""Names and defaults of what physadv offers, with no dependencies, so ``physadv --help`` can list them
without importing torch, kornia or OpenCV. The modules that implement them import their names from here."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "efficientnet_lite0"

METHODS = ("fgsm", "bim", "ll", "target")

DISTRIBUTION_NAMES = ("photo", "athalye2018", "identity")
"""The built-in EOT distributions (:data:`physadv.eot.DISTRIBUTIONS`)."""

# One default each for attack, experiment, compare and lab sessions, from benchmarks/bench_eot_defaults.py
# (digits CNN, 16 images, 'photo' distribution): the sign of the EOT gradient agrees with a 256-sample
# reference on 0.68 of the pixels with 8 samples, 0.74 with 16 and 0.78 with 32, so 16 buys as much as
# going from 4 to 8 did. The mean adversariality of the 16 images (about 0.76) has a standard deviation
# over 5 held-out seeds of 0.014 with 25 transformations, 0.015 with 50 and 0.006 with 100: at 50 it is
# already within ±0.02, at half the cost of 100 (each held-out transformation is a forward pass).
EOT_SAMPLES = 16
"""Transformations averaged per EOT gradient step."""
ADVERSARIALITY_SAMPLES = 50
"""Held-out transformations per image when measuring adversariality."""


@dataclass(frozen=True)
class TransformDefaults:
    """An artificial transformation's strength unit, its neutral strength and the strengths tried by default."""

    name: str
    unit: str
    neutral: float | None
    default_strengths: tuple[float, ...]


TRANSFORM_DEFAULTS = {t.name: t for t in [
    TransformDefaults("brightness", "offset, 0-255 units", 0.0, (-30.0, -10.0, 10.0, 30.0)),
    TransformDefaults("contrast", "factor", 1.0, (0.7, 0.85, 1.15, 1.3)),
    TransformDefaults("blur", "sigma, pixels", 0.0, (0.5, 1.0, 2.0)),
    TransformDefaults("noise", "sigma, 0-255 units", 0.0, (5.0, 10.0, 20.0)),
    # JPEG has no identity strength: even quality 100 re-quantises the DCT coefficients.
    TransformDefaults("jpeg", "quality 1-100", None, (90.0, 75.0, 50.0, 10.0)),
]}

RESOLUTIONS = {"12mp": (4032, 3024), "1080p": (1920, 1080), "720p": (1280, 720)}
"""Virtual camera sensors, (width, height) px: a 12 MP phone, a 1080p and a 720p webcam."""

MAX_PHOTOS_PER_PAGE = 10_000
"""Most virtual photos of one printed page: a session's ``photos_per_page`` (also ``compare`` and
``compare-models --photos-per-page``) and ``photograph --n`` per page of its PDF. Kurakin et al. took one
photo per page; one 12 MP virtual photo measured about 1.7 MB and 8 s (2-core VM, shared, load 12), so
10,000 of one page are already about 17 GB and most of a day: a larger count is a typo, not a plan."""

PAPERS_MM = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}
"""Paper sizes, (width, height) mm."""

CAMERA_PROFILES = ("lab", "handheld", "webcam")
"""The built-in virtual-camera profiles (:mod:`physadv.printouts.profiles`)."""

DEFAULT_CAMERA_PROFILE = "lab"
"""The profile of ``photograph``, ``demo`` and ``run`` unless one is named: the controlled session of
Kurakin et al. (2017), whose channel the destruction rates are compared with."""

IMAGENET_C = "imagenet-c"
"""The 15 corruptions of Hendrycks & Dietterich (2019) at severities 1-5, as ``imagenet-c:<name>`` transformations."""

SEVERITIES = (1, 2, 3, 4, 5)
"""ImageNet-C's severities: the strengths of a corruption."""

CORRUPTION_UNIT = "severity 1-5"


def is_corruption(transform: str) -> bool:
    """Whether ``transform`` names one of the ImageNet-C corruptions (``imagenet-c:<name>``)."""
    return transform.startswith(IMAGENET_C + ":")

CLEAN_METHOD = "none"
"""The method of experiment rows that transform the clean images (no attack): ImageNet-C's corruption accuracy."""

OFFLINE_ENV = "PHYSADV_OFFLINE"
"""Set to 1 to forbid downloading weights (the same as ``--offline``)."""

RANDOM_WEIGHTS = "random"
"""``--weights random``: random initialisation, for smoke tests."""

DEFENCES = ("fgsm-rs", "pgd", "eot", "distill", "gradreg")
"""The defences of ``physadv train-defence`` (:mod:`physadv.defences`)."""

MASKING_MARGIN = 0.10
"""compare-models flags gradient masking when white-box accuracy exceeds transfer accuracy by more than
this (and by two standard errors): a transferred attack is weaker than a white-box one unless the
model's own gradients mislead (Athalye et al. 2018)."""

DEFENCE_DEFAULTS = {"eps": 16.0, "epochs": 5, "batch_size": 64, "lr": 1e-3, "steps": 7, "temperature": 100.0,
                    "gradreg_weight": 1.0}
"""Training defaults of :class:`physadv.defences.DefenceConfig` (ε in 0-255 units; T = 100 as Papernot et al.)."""
