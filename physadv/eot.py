"""Expectation over Transformation (Athalye et al. 2018): attacks that survive the print→photo channel.

An EOT attack follows the mean gradient of the loss over transformations ``t ~ T`` instead of the
gradient at the image itself,

.. math::
    \\nabla_X\\,\\mathbb{E}_{t\\sim T}\\,J(t(X), y) \\approx \\frac{1}{N}\\sum_{k=1}^{N} \\nabla_X J(t_k(X), y),

and plugs into :class:`physadv.attacks.Attack` as its gradient, so ε, α, iterations, the four
methods and the 8-bit output stay those of the core attacks::

    attack = Attack("bim", eps=16).with_gradient(eot_gradient("photo", samples=16), eot="photo")

A :class:`TransformDistribution` is a pipeline of ``kornia.augmentation`` modules, differentiable
w.r.t. the input. Its parameters are sampled on the CPU from a seed (kornia's own RNG state is left
alone), so every sample can be replayed on any device: :func:`adversariality` evaluates on a fixed
held-out set sampled from a seed disjoint from the attack's.

Shape:
    - Images: :math:`(B, 3, H, W)`, float RGB in [0, 1]; every transformation keeps them in [0, 1].
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from kornia.augmentation import random_generator as rg
from kornia.augmentation.container.params import ParamItem
from torch import nn

from physadv.attacks import cross_entropy_gradient
from physadv.catalog import ADVERSARIALITY_SAMPLES, DISTRIBUTION_NAMES, EOT_SAMPLES
from physadv.channel import jpeg_roundtrip
from physadv.classifiers import Classifier
from physadv.classifiers.wrapper import input_gradient
from physadv.errors import InputError
from physadv.images import check_images, to_tensor, to_uint8

# Transformed pixels per forward/backward pass, by device. Measured with ``benchmarks/bench_eot.py
# --sweep`` (photo, EOT-BIM) on 2 CPU cores: efficientnet_lite0 at 224 px peaks at chunks of 4–8 images
# (27 images/s; 11 at 16, 6 at 128: large activations no longer stay in cache and their memory is
# re-faulted from the OS every pass), the digits CNN at 64 px at 64 images (1030/s; 600 at 8). So the
# chunk scales with the image area. CUDA was not measured here: 128 images of 224 px, a guess to replace
# with the sweep's answer on the GPU at hand.
_PIXELS_PER_CHUNK = {"cpu": 8 * 224 * 224, "cuda": 128 * 224 * 224}


# --- transformations that kornia lacks or gets wrong ------------------------------------------------


class RandomGaussianNoiseStd(K.IntensityAugmentationBase2D):
    """Additive Gaussian noise whose σ is itself drawn from ``U(std)`` per image, clamped to [0, 1].

    kornia's ``RandomGaussianNoise`` has one fixed σ (Athalye's distribution draws σ from 0–0.1) and
    does not clamp, so noisy pixels would leave the range of an image.
    """

    def __init__(self, std: tuple[float, float] = (0.0, 0.1), p: float = 1.0) -> None:
        super().__init__(p=p, same_on_batch=False, p_batch=1.0)
        low, high = std
        if not 0 <= low <= high:
            raise InputError(f"noise std range must satisfy 0 ≤ low ≤ high, got {std}")
        self.std = (float(low), float(high))

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        low, high = self.std
        sigma = torch.rand(batch_shape[0]) * (high - low) + low
        return {"gaussian_noise": torch.randn(batch_shape) * sigma.view(-1, *([1] * (len(batch_shape) - 1)))}

    def apply_transform(self, input: torch.Tensor, params: dict[str, torch.Tensor], flags: dict[str, Any],
                        transform: torch.Tensor | None = None) -> torch.Tensor:
        return (input + params["gaussian_noise"].to(input.device, input.dtype)).clamp(0, 1)


class _RealJPEG(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, images: torch.Tensor, qualities: torch.Tensor) -> torch.Tensor:
        decoded = [jpeg_roundtrip(image, quality)
                   for image, quality in zip(to_uint8(images.detach().clamp(0, 1)), qualities.round().int().tolist())]
        return to_tensor(decoded, images.device).to(images.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output, None


class StraightThroughJPEG(K.IntensityAugmentationBase2D):
    """JPEG at a quality drawn from ``jpeg_quality``: the real codec forward, identity backward.

    The forward pass is exactly :func:`physadv.channel.jpeg` at the rounded quality (libjpeg via
    Pillow, on the CPU), i.e. what a camera or a file really does. kornia's ``RandomJPEG`` is differentiable but its forward
    is only an approximation of a codec and its autograd gradient disagrees with finite differences;
    it has also failed on CUDA tensors (kornia#2867). The straight-through gradient (BPDA, Athalye et
    al. 2018b) treats JPEG as ≈ identity, which is what a high-quality JPEG is to first order.
    """

    def __init__(self, jpeg_quality: tuple[float, float] = (60.0, 95.0), p: float = 1.0) -> None:
        super().__init__(p=p, same_on_batch=False)
        if not 1 <= jpeg_quality[0] <= jpeg_quality[1] <= 100:
            raise InputError(f"JPEG quality range must lie in 1..100, got {jpeg_quality}")
        self._param_generator = rg.JPEGGenerator(jpeg_quality)

    def apply_transform(self, input: torch.Tensor, params: dict[str, torch.Tensor], flags: dict[str, Any],
                        transform: torch.Tensor | None = None) -> torch.Tensor:
        return _RealJPEG.apply(input, params["jpeg_quality"].expand(input.shape[0]))


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``fp(xp)`` at ``x`` (``xp`` increasing, constant beyond its ends); differentiable in ``x``."""
    x = torch.minimum(torch.maximum(x, xp[0]), xp[-1])
    index = torch.bucketize(x.detach(), xp[1:-1].contiguous())
    x0, x1, y0, y1 = xp[index], xp[index + 1], fp[index], fp[index + 1]
    return y0 + (x - x0) / (x1 - x0) * (y1 - y0)


def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


class RandomChannelResponse(K.IntensityAugmentationBase2D):
    """A measured print → photo colour response: 3×3 colour matrix in linear light, tone curve per
    channel, an exposure and white-balance gain drawn per image, and noise whose σ depends on the level.

    Args:
        tone_curve: ``(K, 4)`` rows (printed level, photographed R, G, B) in 0-255 units.
        colour_matrix: ``(3, 3)`` on linear-light sRGB (rows: output channels).
        exposure: ``(low, high)``, the uniform range of the exposure gain.
        white_balance_r: ``(low, high)``, the uniform range of the red gain relative to green.
        white_balance_b: ``(low, high)``, the uniform range of the blue gain relative to green.
        noise: ``(L, 4)`` rows (level, σ R, σ G, σ B) in 0-255 units, per image pixel.
    """

    def __init__(self, tone_curve: Sequence[Sequence[float]], colour_matrix: Sequence[Sequence[float]],
                 exposure: tuple[float, float], white_balance_r: tuple[float, float],
                 white_balance_b: tuple[float, float], noise: Sequence[Sequence[float]], p: float = 1.0) -> None:
        super().__init__(p=p, same_on_batch=False, p_batch=1.0)
        curve = torch.tensor(tone_curve, dtype=torch.float32) / 255
        table = torch.tensor(noise, dtype=torch.float32) / 255
        if curve.ndim != 2 or curve.shape[1] != 4 or table.ndim != 2 or table.shape[1] != 4:
            raise InputError("tone curve and noise table need rows of 4 numbers")
        if len(table) == 1:  # one level: constant σ
            table = torch.cat([table, table + torch.tensor([1.0, 0, 0, 0])])
        self.curve, self.matrix, self.noise_table = curve, torch.tensor(colour_matrix, dtype=torch.float32), table
        self.ranges = torch.tensor([exposure, white_balance_r, white_balance_b], dtype=torch.float32)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        low, high = self.ranges[:, 0], self.ranges[:, 1]
        exposure, balance_r, balance_b = (torch.rand(batch_shape[0], 3) * (high - low) + low).unbind(1)
        gains = exposure[:, None] * torch.stack([balance_r, torch.ones_like(balance_r), balance_b], dim=1)
        return {"gains": gains, "noise": torch.randn(batch_shape)}

    def apply_transform(self, input: torch.Tensor, params: dict[str, torch.Tensor], flags: dict[str, Any],
                        transform: torch.Tensor | None = None) -> torch.Tensor:
        device = input.device
        curve, table = self.curve.to(device), self.noise_table.to(device)
        mixed = torch.einsum("ij,bjhw->bihw", self.matrix.to(device), _srgb_to_linear(input.clamp(0, 1)))
        encoded = _linear_to_srgb(mixed)
        toned = torch.stack([_interp(encoded[:, c], curve[:, 0], curve[:, 1 + c]) for c in range(3)], dim=1)
        lit = toned * params["gains"].to(device, input.dtype)[:, :, None, None]
        sigma = torch.stack([_interp(lit[:, c].detach(), table[:, 0], table[:, 1 + c]) for c in range(3)], dim=1)
        return (lit + params["noise"].to(device, input.dtype) * sigma).clamp(0, 1)


class RandomPlaneShift(K.IntensityAugmentationBase2D):
    """Colour-plane misregistration: each of the R, G, B planes moved by ``shift_px`` image pixels in its own
    random direction (bilinear, edges replicated), differentiable in the image.

    A plane displaced by ``L`` in a random direction lies ``L·√(2/3)`` (RMS) from the mean of three such
    planes, which is what ``physadv calibrate`` measures; :func:`channel_distribution` converts."""

    def __init__(self, shift_px: float, p: float = 1.0) -> None:
        super().__init__(p=p, same_on_batch=False, p_batch=1.0)
        if not 0 <= shift_px:
            raise InputError(f"plane shift must be ≥ 0 px, got {shift_px}")
        self.shift_px = float(shift_px)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        angle = torch.rand(batch_shape[0], 3) * (2 * math.pi)
        return {"shift": torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1) * self.shift_px}

    def apply_transform(self, input: torch.Tensor, params: dict[str, torch.Tensor], flags: dict[str, Any],
                        transform: torch.Tensor | None = None) -> torch.Tensor:
        batch, channels, height, width = input.shape
        shift = params["shift"].to(input.device, input.dtype).reshape(batch * channels, 2)
        theta = torch.zeros(batch * channels, 2, 3, device=input.device, dtype=input.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        # affine_grid samples the source at the output position minus the shift, in [-1, 1] units.
        theta[:, 0, 2], theta[:, 1, 2] = -2 * shift[:, 0] / width, -2 * shift[:, 1] / height
        planes = input.reshape(batch * channels, 1, height, width)
        grid = F.affine_grid(theta, list(planes.shape), align_corners=False)
        moved = F.grid_sample(planes, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return moved.reshape(batch, channels, height, width)


def channel_distribution(name: str, *, blur_sigma_px: float, tone_curve: Sequence[Sequence[float]],
                         colour_matrix: Sequence[Sequence[float]], exposure: tuple[float, float],
                         white_balance_r: tuple[float, float], white_balance_b: tuple[float, float],
                         noise: Sequence[Sequence[float]], misregistration_px: float = 0.0,
                         description: str = "") -> TransformDistribution:
    """A measured print → photo channel as seen by the classifier, in the image's own pixels: the colour
    planes' misregistration (``misregistration_px``: their RMS distance from their mean, as calibrate
    measures it), Gaussian blur of ``blur_sigma_px`` image pixels on the printed levels, then
    :class:`RandomChannelResponse`. Build it from a camera profile with
    :func:`physadv.capture.calibrate.profile_distribution`."""
    modules: list[nn.Module] = []
    if misregistration_px > 0.01:
        modules.append(RandomPlaneShift(misregistration_px * math.sqrt(1.5)))
    if blur_sigma_px > 0.05:
        size = max(3, 2 * math.ceil(3 * blur_sigma_px) + 1)
        modules.append(K.RandomGaussianBlur(kernel_size=size, sigma=(blur_sigma_px, blur_sigma_px), p=1.0))
    modules.append(RandomChannelResponse(tone_curve, colour_matrix, exposure, white_balance_r, white_balance_b, noise))
    return TransformDistribution(name, modules, description or f"calibrated channel {name}")


# --- distributions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transformations:
    """``n`` sampled parameter sets of one distribution, for images of one size: replay them with
    :meth:`TransformDistribution.__call__`. ``params`` is kornia's (``AugmentationSequential._params``)."""

    params: list[ParamItem]
    n: int
    seed: int

    def select(self, index: torch.Tensor) -> list[ParamItem]:
        """kornia params for a batch whose ``k``-th image gets transformation ``index[k]``."""
        def select(name: str, tensor: torch.Tensor) -> torch.Tensor:
            # The one entry that is not per image: (B, C, H, W) of the batch the params were drawn for.
            if name == "forward_input_shape":
                return torch.cat([tensor.new_tensor([len(index)]), tensor[1:]])
            if tensor.ndim and tensor.shape[0] == self.n:
                return tensor.index_select(0, index.to(tensor.device))
            return tensor  # drawn once for the whole batch (same_on_batch)

        return _map_params(self.params, select)

    def to(self, device: torch.device | str) -> "Transformations":
        return Transformations(_map_params(self.params, lambda _, tensor: tensor.to(device)), self.n, self.seed)


def _map_params(params: list[ParamItem], fn: Callable[[str, torch.Tensor], torch.Tensor]) -> list[ParamItem]:
    """kornia params (nested for nested containers) with ``fn(key, tensor)`` applied to every tensor."""
    mapped = []
    for item in params:
        if isinstance(item.data, dict):
            data: Any = {k: fn(k, v) if isinstance(v, torch.Tensor) else v for k, v in item.data.items()}
        elif isinstance(item.data, list):
            data = _map_params(item.data, fn)
        else:
            data = item.data
        mapped.append(ParamItem(item.name, data))
    return mapped


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of names and numbers (disjoint streams for the attack's steps and
    the held-out evaluation set, independent of how many samples either draws)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class TransformDistribution(nn.Module):
    """A named distribution of image transformations: a ``kornia.augmentation`` pipeline.

    Args:
        name: recorded in outputs.
        modules: kornia 2D augmentation modules applied in order (one, a list or an
            ``AugmentationSequential``); none means the identity. They must keep images in [0, 1] and be differentiable.
        description: one line for help texts.

    Call it as ``distribution(images, params)`` with params from :meth:`sample` (``Transformations.select``).
    Transformations run in float32 even under autocast (kornia's colour ops go NaN in float16, kornia#4560).
    """

    def __init__(self, name: str, modules: nn.Module | Sequence[nn.Module] = (), description: str = "") -> None:
        super().__init__()
        self.name = name
        self.description = description
        if isinstance(modules, nn.Module) and not isinstance(modules, K.AugmentationSequential):
            modules = [modules]
        if isinstance(modules, K.AugmentationSequential):
            self.pipeline: K.AugmentationSequential | None = modules
        else:
            modules = list(modules)
            for module in modules:
                if not isinstance(module, (K.AugmentationBase2D, K.AugmentationSequential)):
                    raise InputError(f"distribution {name!r}: {type(module).__name__} is not a kornia 2D augmentation")
            self.pipeline = K.AugmentationSequential(*modules) if modules else None

    @property
    def is_identity(self) -> bool:
        return self.pipeline is None

    def sample(self, n: int, image_shape: Sequence[int], seed: int) -> Transformations:
        """Draw ``n`` transformations for images of shape ``(3, H, W)`` from ``seed``, on the CPU.

        The same arguments give the same parameters on every device; the global RNG is untouched.
        """
        if n < 1:
            raise InputError(f"the number of transformations must be ≥ 1, got {n}")
        if self.pipeline is None:
            return Transformations([], n, seed)
        for module in self.pipeline.modules():
            # A pipeline moved to CUDA would sample there: other numbers, and CUDA's RNG not forked.
            if isinstance(module, K.AugmentationBase2D):
                module.set_rng_device_and_dtype(torch.device("cpu"), torch.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            params = self.pipeline.forward_parameters(torch.Size((n, *image_shape)))
        return Transformations(params, n, seed)

    def forward(self, images: torch.Tensor, params: list[ParamItem]) -> torch.Tensor:
        if self.pipeline is None:
            return images
        with torch.autocast(images.device.type, enabled=False):
            return self.pipeline(images.float(), params=params)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def photo() -> TransformDistribution:
    """A printout photographed by a phone, in the order light meets it: perspective (distortion 0.25),
    scale 0.9–1.4 with rotation ±22.5° and translation ±5 % (edges replicated: paper continues), Gaussian
    blur σ 0.1–1.0 px (7×7), brightness ±0.05, contrast ×0.8–1.2, white-balance colour cast (Planckian,
    CIE D 4 500–9 500 K: R ×0.90–1.09, B ×0.85–1.15), sensor noise σ ~ U(0, 0.1), JPEG quality 60–95
    (real codec, straight-through gradient)."""
    return TransformDistribution("photo", [
        K.RandomPerspective(distortion_scale=0.25, p=1.0),
        K.RandomAffine(degrees=22.5, translate=(0.05, 0.05), scale=(0.9, 1.4), padding_mode="border", p=1.0),
        K.RandomGaussianBlur(kernel_size=7, sigma=(0.1, 1.0), p=1.0),
        K.RandomBrightness(brightness=(0.95, 1.05), p=1.0),
        K.RandomContrast(contrast=(0.8, 1.2), p=1.0),
        K.RandomPlanckianJitter(mode="CIED", select_from=list(range(3, 9)), p=1.0),
        RandomGaussianNoiseStd(std=(0.0, 0.1)),
        StraightThroughJPEG(jpeg_quality=(60.0, 95.0)),
    ], "a printout photographed by a phone")


def athalye2018() -> TransformDistribution:
    """Athalye et al. 2018's 2D distribution (their Table 4): scale 0.9–1.4, rotation ±22.5°, translation
    (theirs is "any in bounds"; here ±10 %, edges replicated), lighten/darken ±0.05, Gaussian noise
    σ ~ U(0, 0.1), clamped to [0, 1]."""
    return TransformDistribution("athalye2018", [
        K.RandomAffine(degrees=22.5, translate=(0.1, 0.1), scale=(0.9, 1.4), padding_mode="border", p=1.0),
        K.RandomBrightness(brightness=(0.95, 1.05), p=1.0),
        RandomGaussianNoiseStd(std=(0.0, 0.1)),
    ], "Athalye et al. 2018's 2D distribution")


def identity() -> TransformDistribution:
    """No transformation: EOT with it is exactly the plain attack."""
    return TransformDistribution("identity", [], "no transformation (EOT equals the plain attack)")


_FACTORIES = {"photo": photo, "athalye2018": athalye2018, "identity": identity}
DISTRIBUTIONS: dict[str, Callable[[], TransformDistribution]] = {name: _FACTORIES[name] for name in DISTRIBUTION_NAMES}
"""Built-in distributions by name; each call builds fresh modules."""

DistributionSpec = str | nn.Module | Sequence[nn.Module]


def distribution(spec: DistributionSpec) -> TransformDistribution:
    """A built-in distribution by name, or one composed from kornia modules (named ``"custom"``)."""
    if isinstance(spec, TransformDistribution):
        return spec
    if isinstance(spec, str):
        if spec.startswith("profile:"):
            raise InputError(f"EOT distribution {spec!r}: build it with "
                             "physadv.capture.calibrate.profile_distribution (the CLI does this for you)")
        try:
            return DISTRIBUTIONS[spec]()
        except KeyError:
            raise InputError(f"unknown EOT distribution {spec!r}; choose one of {', '.join(DISTRIBUTIONS)}") from None
    return TransformDistribution("custom", spec, "user-composed kornia pipeline")


_distribution = distribution  # for the functions below, whose argument is named ``distribution``


# --- the EOT gradient and adversariality --------------------------------------------------------------


def default_chunk_size(device: torch.device | str, image_shape: Sequence[int] = (224, 224)) -> int:
    """How many transformed images (images × samples) of shape ``(…, H, W)`` go through the model at
    once on ``device``: a per-device budget of pixels, measured (see ``benchmarks/bench_eot.py``)."""
    budget = _PIXELS_PER_CHUNK.get(torch.device(device).type, _PIXELS_PER_CHUNK["cpu"])
    return max(1, budget // (image_shape[-2] * image_shape[-1]))


def _check_count(what: str, value: int | None) -> None:
    if value is not None and (int(value) != value or value < 1):
        raise InputError(f"{what} must be a whole number ≥ 1, got {value!r}")


def _chunks(batch: int, n: int, chunk_size: int, device: torch.device):
    """``(image index, transformation index)`` pairs of all ``batch × n`` combinations, ``chunk_size`` at a time."""
    image_index = torch.arange(batch, device=device).repeat_interleave(n)
    sample_index = torch.arange(n, device=device).repeat(batch)
    for start in range(0, batch * n, chunk_size):
        yield image_index[start:start + chunk_size], sample_index[start:start + chunk_size]


def mean_gradient(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                  distribution: TransformDistribution, transformations: Transformations,
                  chunk_size: int | None = None) -> torch.Tensor:
    """``(1/N) Σ_k ∇_X J(t_k(X), y)`` for each image, with the same ``N`` transformations for every image.

    Images × transformations are flattened and sent through the model ``chunk_size`` at a time
    (default :func:`default_chunk_size` for the device and image size), accumulating the gradient.
    """
    chunk_size = chunk_size or default_chunk_size(images.device, images.shape)
    transformations = transformations.to(images.device)
    images = images.detach().requires_grad_(True)
    gradient = torch.zeros_like(images)
    for image_index, sample_index in _chunks(images.shape[0], transformations.n, chunk_size, images.device):
        transformed = distribution(images.index_select(0, image_index), transformations.select(sample_index))
        loss = F.cross_entropy(classifier(transformed).float(), labels[image_index], reduction="sum")
        gradient += input_gradient(loss, images)
    return gradient / transformations.n


@dataclass(frozen=True)
class EOTGradient:
    """A :data:`physadv.attacks.GradientFn`: the mean gradient over ``samples`` transformations drawn
    afresh at every step (the same ones for every image of the batch, so an image's attack does not
    depend on its batch-mates, nor on which call or resumed run it comes in).

    Step ``k`` of an attack draws from :meth:`step_seed` ``(k)``, so its transformations can be
    replayed with ``distribution.sample(samples, image_shape, step_seed(k))``.
    """

    distribution: TransformDistribution
    samples: int
    chunk_size: int | None = None
    seed: int = 0

    def step_seed(self, step: int) -> int:
        return derive_seed("eot-step", self.seed, step)

    def __call__(self, classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                 step: int = 0) -> torch.Tensor:
        if self.distribution.is_identity:
            # All samples coincide: one gradient is the exact mean, on every device and batch size.
            return cross_entropy_gradient(classifier, images, labels)
        transformations = self.distribution.sample(self.samples, images.shape[1:], self.step_seed(step))
        return mean_gradient(classifier, images, labels, self.distribution, transformations, self.chunk_size)


def eot_gradient(distribution: DistributionSpec, samples: int = EOT_SAMPLES, chunk_size: int | None = None,
                 seed: int = 0) -> EOTGradient:
    """The EOT gradient to plug into an attack:
    ``Attack("bim", eps=16).with_gradient(eot_gradient("photo", 16), eot="photo")``.

    Args:
        distribution: a name of :data:`DISTRIBUTIONS`, a :class:`TransformDistribution`, or kornia modules.
        samples: transformations averaged per step (N).
        chunk_size: images × samples per forward/backward pass; ``None``: :func:`default_chunk_size`.
        seed: seeds the transformations of every step.

    Raises:
        InputError: unknown distribution name, ``samples`` or ``chunk_size`` < 1.
    """
    _check_count("EOT samples", samples)
    _check_count("EOT chunk size", chunk_size)
    return EOTGradient(_distribution(distribution), int(samples), chunk_size, seed)


def held_out(distribution: TransformDistribution, n: int, image_shape: Sequence[int], seed: int = 0) -> Transformations:
    """The fixed held-out set of ``n`` transformations used by :func:`adversariality` (never used by an attack)."""
    return distribution.sample(n, image_shape, derive_seed("held-out", seed))


@torch.no_grad()
def adversariality(classifier: Classifier, images: torch.Tensor, goal: torch.Tensor, targeted: bool,
                   distribution: DistributionSpec, n: int = ADVERSARIALITY_SAMPLES, seed: int = 0,
                   chunk_size: int | None = None) -> torch.Tensor:
    """Athalye et al.'s adversariality: per image, the fraction of ``n`` held-out transformations under
    which it is still misclassified (``argmax ≠ goal``, untargeted) or classified as the target
    (``argmax = goal``, targeted).

    Args:
        images: :math:`(B, 3, H, W)` in [0, 1] (e.g. ``AttackResult.adversarial``).
        goal: ``AttackResult.goal``, the class per image that success is measured against.
        targeted: ``AttackResult.targeted``: success is ``argmax = goal`` (else ``argmax ≠ goal``).
        distribution: as for :func:`eot_gradient`; the held-out set is :func:`held_out` ``(…, seed)``.

    Returns:
        :math:`(B,)` float in [0, 1], on ``classifier.device``.
    """
    check_images(images)
    _check_count("held-out transformations", n)
    _check_count("chunk size", chunk_size)
    transforms = _distribution(distribution)
    images = images.to(classifier.device, torch.float32)
    goal = classifier.check_labels(goal, images.shape[0])
    chunk_size = chunk_size or default_chunk_size(images.device, images.shape)
    transformations = held_out(transforms, n, images.shape[1:], seed).to(images.device)
    hits = torch.cat([
        classifier(transforms(images[image_index], transformations.select(sample_index))).argmax(-1)
        == goal[image_index]
        for image_index, sample_index in _chunks(images.shape[0], n, chunk_size, images.device)])
    hits = hits if targeted else ~hits
    return hits.view(-1, n).float().mean(dim=1)
