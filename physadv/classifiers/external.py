"""Bring your own model: ``timm:NAME``, ``torchvision:NAME`` and ``path/to/file.py:factory``.

Each form takes its preprocessing from where its library keeps it:

- ``timm:NAME``: :func:`timm.data.resolve_data_config` of the model's ``pretrained_cfg`` (input
  size, mean/std, interpolation, crop fraction). Weights: the Hugging Face cache (timm's own
  convention, ``model.safetensors`` of the model's ``hf_hub_id``) or, for models without one, the
  torch cache (``$TORCH_HOME/hub/checkpoints``).
- ``torchvision:NAME``: the ``DEFAULT`` member of the model's weights enum: its ``transforms()``
  (resize, crop, mean/std, interpolation) and ``meta["categories"]``. Weights: the torch cache.
- ``FILE.py:FACTORY``: ``FACTORY()`` (no arguments) in the user's file returns a :class:`ModelBundle`
  (or a dict of its fields, or a ready :class:`~physadv.classifiers.Classifier`). Only the user's own
  ``--model`` may name one: a model read from a file is a name (:func:`check_recorded_model`).

``weights`` may be a file (loaded with ``weights_only=True``; safetensors files with safetensors),
:data:`RANDOM_WEIGHTS` (random initialisation, for smoke tests), or ``None``: the library's cache,
downloading into it unless offline (``offline=True`` or ``PHYSADV_OFFLINE=1``). Offline with the
weights missing raises :class:`~physadv.errors.WeightsNotFoundError` naming the exact file and folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from physadv.catalog import OFFLINE_ENV, RANDOM_WEIGHTS
from physadv.classifiers.checkpoints import existing_weights, load_state_dict, load_strict, torch_cache_checkpoints
from physadv.classifiers.wrapper import CentreCrop, Classifier, Normalise, describe_error
from physadv.errors import InputError, WeightsNotFoundError
from physadv.labels import LabelSpace, imagenet_labels, label_space, normalise_name

PREFIXES = ("timm:", "torchvision:")
MAX_LABEL_FILE_BYTES = 8 << 20
MAX_LABEL_LENGTH = 200
MAX_INPUT_SIDE = 4096


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else whether ``$PHYSADV_OFFLINE`` is ``1``/``true``/``yes``."""
    if offline is not None:
        return bool(offline)
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def is_external(name: str) -> bool:
    """Whether ``name`` is one of the bring-your-own forms rather than a built-in name."""
    return name.startswith(PREFIXES) or _split_file_spec(name) is not None


def is_code_spec(name: str) -> bool:
    """Whether ``name`` is a ``FILE.py:FACTORY`` spec: loading it runs that file's code."""
    return _split_file_spec(name) is not None


def check_recorded_model(name: str, where: str, user_model: str | None = None) -> str:
    """``name``, a model read from a file (a manifest, an ``attack.json``, a run's configuration), if it may
    be loaded: a built-in, ``timm:`` or ``torchvision:`` name, or the very ``FILE.py:FACTORY`` the user
    named themselves (``user_model``: their ``--model``, ``None`` if they named none).

    Files travel between people, so a code spec in one is somebody else's code: it is a name to compare,
    never a file to import. Every path from a file's model field to :func:`load_classifier` passes here.

    Raises:
        InputError: ``name`` is a ``FILE.py:FACTORY`` spec other than ``user_model`` (nothing is imported).
    """
    if is_code_spec(name) and name != user_model:
        raise InputError(f"{where}: its model {name!r} names a Python file, and physadv never runs code named by a "
                         f"file (a model read from a file is only a name); if you trust that file, pass "
                         f"--model {name} yourself")
    return name


@dataclass(frozen=True)
class ModelBundle:
    """What a ``file.py:factory`` returns: a model and how to feed it.

    Attributes:
        model: maps normalised ``(B, 3, h, w)`` tensors to logits ``(B, K)``.
        input_size: ``h`` (square) or ``(h, w)``: the size the model takes, after the crop.
        mean, std: per-channel normalisation of [0, 1] RGB (defaults: none).
        labels: the ``K`` class names in logit order; ``None``: ImageNet-1k if ``K == 1000``,
            else ``class0 … class{K-1}`` (or pass a label file).
        interpolation: ``"bilinear"`` or ``"bicubic"`` for the resize.
        crop_pct: the central fraction kept after resizing to ``input_size / crop_pct`` (1: no crop).
        name: recorded in outputs (default: the factory's name).

    Example (``my_model.py``)::

        from physadv.classifiers.external import ModelBundle
        def factory():
            return ModelBundle(MyNet(), input_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

    then ``physadv attack samples --model my_model.py:factory --weights my_model.pt ...``.
    """

    model: nn.Module
    input_size: int | tuple[int, int]
    mean: Sequence[float] = (0.0, 0.0, 0.0)
    std: Sequence[float] = (1.0, 1.0, 1.0)
    labels: Sequence[str] | None = None
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    name: str | None = None


# --- preprocessing and labels ----------------------------------------------------------------------------


def _classifier(model: nn.Module, *, name: str, labels: LabelSpace, input_size: tuple[int, int],
                mean: Sequence[float], std: Sequence[float], interpolation: str, crop_pct: float,
                weights: str) -> Classifier:
    """Resize to ``input_size / crop_pct`` (the prepared image size), centre-crop ``input_size``, normalise."""
    if not (0 < crop_pct <= 1):
        raise InputError(f"{name}: crop_pct must be in (0, 1], got {crop_pct!r}")
    scaled = (math.floor(input_size[0] / crop_pct), math.floor(input_size[1] / crop_pct))
    preprocess = nn.Sequential(CentreCrop(input_size), Normalise(mean, std)) if scaled != input_size \
        else Normalise(mean, std)
    return Classifier(model.eval(), name=name, labels=labels, input_size=scaled, preprocess=preprocess,
                      weights=weights, image_size=max(scaled), interpolation=interpolation)


def default_labels(count: int) -> LabelSpace:
    """ImageNet-1k for 1000 outputs, else ``class0 … class{count-1}``."""
    return imagenet_labels() if count == 1000 else label_space([f"class{i}" for i in range(count)])


def read_label_file(path: str | Path, count: int | None = None) -> LabelSpace:
    """Class names from a UTF-8 text file, one per line in logit order (untrusted: size, length and
    characters are checked, and the count must equal the model's ``count`` outputs)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"label file {path} does not exist")
    if path.stat().st_size > MAX_LABEL_FILE_BYTES:
        raise InputError(f"label file {path} is larger than {MAX_LABEL_FILE_BYTES >> 20} MiB")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"label file {path} is not UTF-8 text") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    for number, name in enumerate(names, 1):
        if not name:
            raise InputError(f"{path}:{number}: empty class name (one name per line, no blank lines)")
        if len(name) > MAX_LABEL_LENGTH or not name.isprintable():
            raise InputError(f"{path}:{number}: a class name must be printable and at most "
                             f"{MAX_LABEL_LENGTH} characters")
    if not names:
        raise InputError(f"label file {path} names no classes")
    if count is not None and len(names) != count:
        raise InputError(f"label file {path} names {len(names)} classes but the model has {count} outputs")
    return _labels_from_names(names, f"label file {path}")


def _labels_from_names(names: list[str], where: str) -> LabelSpace:
    """Class names in logit order: ImageNet-1k's own label space (with its WordNet ids) when they are its
    names, else names that differ once case, '_', '-' and spaces are folded, as ``--label`` and
    ``--target`` compare them (a repeated name would make them pick one of its classes silently)."""
    if tuple(names) == imagenet_labels().names:
        return imagenet_labels()
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        earlier = first.setdefault(normalise_name(name), index)
        if earlier != index:
            raise InputError(f"{where}: class {index} {name[:60]!r} repeats class {earlier} {names[earlier][:60]!r} "
                             "(names must differ, case, '_', '-' and spaces aside)")
    return label_space(names)


# --- weights --------------------------------------------------------------------------------------------


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    path = existing_weights(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as error:
            raise InputError(f"{path}: not a readable safetensors file ({error})") from None
    return load_state_dict(path)


def _apply_weights(model: nn.Module, path: Path, name: str) -> None:
    load_strict(model, _load_file(path), path, name)


def _fetch(url: str, target: Path, what: str, offline: bool) -> Path:
    """``target`` if cached, else downloaded from ``url`` into it (never when offline)."""
    if target.is_file():
        return target
    if offline:
        raise WeightsNotFoundError(
            f"{what} needs its weights and downloads are off ({OFFLINE_ENV}=1 or --offline).\n"
            f"  Get {target.name} from {url} (on a machine with internet),\n"
            f"  then put it at {target}\n"
            f"  or pass its path with --weights PATH.")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=True)
    except Exception as error:  # urllib/ssl/OS errors: say where the file should go instead
        raise WeightsNotFoundError(f"{what}: downloading {url} failed ({type(error).__name__}: {error}); "
                                   f"put {target.name} at {target} or pass --weights PATH") from None
    return target


def _hub_file(hub_id: str, what: str, offline: bool) -> Path:
    """The weights of a Hugging Face Hub model from the HF cache, downloaded into it unless offline."""
    import huggingface_hub
    from huggingface_hub import constants

    for filename in ("model.safetensors", "pytorch_model.bin"):
        cached = huggingface_hub.try_to_load_from_cache(hub_id, filename)
        if isinstance(cached, str):
            return Path(cached)
    folder = Path(constants.HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}"
    if offline:
        raise WeightsNotFoundError(
            f"{what} needs its weights and downloads are off ({OFFLINE_ENV}=1 or --offline).\n"
            f"  Get model.safetensors of https://huggingface.co/{hub_id} (on a machine with internet),\n"
            f"  into the Hugging Face cache {folder}/snapshots/<revision>/model.safetensors\n"
            f"  (e.g. `hf download {hub_id}` there and copy the cache), or pass its path with --weights PATH.")
    try:
        return Path(huggingface_hub.hf_hub_download(hub_id, "model.safetensors"))
    except Exception as error:  # network, missing file or gated repository: one line either way
        raise WeightsNotFoundError(f"{what}: downloading model.safetensors of {hub_id} failed "
                                   f"({type(error).__name__}); put it in {folder} or pass --weights PATH") from None


def _weights_choice(weights: str | Path | None) -> Path | str | None:
    if weights is None or str(weights) == RANDOM_WEIGHTS:
        return None if weights is None else RANDOM_WEIGHTS
    return Path(weights).expanduser()


# --- the three forms ------------------------------------------------------------------------------------


def _timm(name: str, weights: str | Path | None, offline: bool) -> Classifier:
    import timm
    from timm.data import ImageNetInfo, infer_imagenet_subset, resolve_data_config

    if not timm.is_model(name):
        raise InputError(f"timm:{name}: timm has no such model (`python -c \"import timm; "
                         f"print(timm.list_models('*{name[:8]}*'))\"` lists similar names)")
    model = timm.create_model(name, pretrained=False)
    if model.num_classes < 1:
        raise InputError(f"timm:{name} has no classifier head (num_classes = 0)")
    choice = _weights_choice(weights)
    if choice is None:
        cfg = model.pretrained_cfg
        if cfg.get("hf_hub_id"):
            choice = _hub_file(cfg["hf_hub_id"], f"timm:{name}", offline)
        elif cfg.get("url"):
            choice = _fetch(cfg["url"], torch_cache_checkpoints() / Path(cfg["url"]).name, f"timm:{name}", offline)
        else:
            raise WeightsNotFoundError(f"timm:{name} has no published weights; pass --weights PATH "
                                       f"(or --weights {RANDOM_WEIGHTS} for a randomly initialised model)")
    if choice != RANDOM_WEIGHTS:
        _apply_weights(model, choice, f"timm:{name}")
    config = resolve_data_config({}, model=model)
    subset = infer_imagenet_subset(model)
    if model.num_classes != 1000 and subset:
        info = ImageNetInfo(subset)
        labels = LabelSpace(names=tuple(info.label_descriptions()), wnids=tuple(info.label_names()))
    else:
        labels = default_labels(model.num_classes)
    interpolation = config["interpolation"] if config["interpolation"] in ("bilinear", "bicubic") else "bilinear"
    return _classifier(model, name=f"timm:{name}", labels=labels, input_size=tuple(config["input_size"][1:]),
                       mean=config["mean"], std=config["std"], interpolation=interpolation,
                       crop_pct=float(config["crop_pct"]), weights=str(choice))


_TRANSFORM_INPUT = ("inception_v3", "googlenet")  # built with transform_input=True when weights are loaded


def _torchvision(name: str, weights: str | Path | None, offline: bool) -> Classifier:
    import torchvision.models as tvm

    if name not in tvm.list_models(module=tvm):
        raise InputError(f"torchvision:{name}: not a torchvision classification model "
                         f"(`python -c \"import torchvision; print(torchvision.models.list_models())\"`)")
    default = tvm.get_model_weights(name).DEFAULT
    categories = default.meta["categories"]
    extra = {"transform_input": True, "aux_logits": True, "init_weights": False} if name in _TRANSFORM_INPUT else {}
    model = tvm.get_model(name, weights=None, num_classes=len(categories), **extra)
    choice = _weights_choice(weights)
    if choice is None:
        choice = _fetch(default.url, torch_cache_checkpoints() / Path(default.url).name, f"torchvision:{name}", offline)
    if choice != RANDOM_WEIGHTS:
        _apply_weights(model, choice, f"torchvision:{name}")
    transform = default.transforms()
    crop, resize = int(transform.crop_size[0]), int(transform.resize_size[0])
    labels = imagenet_labels() if len(categories) == 1000 else label_space(categories)
    interpolation = transform.interpolation.value if transform.interpolation.value in ("bilinear", "bicubic") \
        else "bilinear"
    return _classifier(model, name=f"torchvision:{name}", labels=labels, input_size=(crop, crop),
                       mean=transform.mean, std=transform.std, interpolation=interpolation,
                       crop_pct=min(1.0, crop / resize), weights=str(choice))


def _split_file_spec(name: str) -> tuple[Path, str] | None:
    path, sep, factory = name.rpartition(":")
    if not sep or not path.endswith(".py") or not factory.isidentifier():
        return None
    return Path(path).expanduser(), factory


def _bundle_from(result: Any, where: str) -> ModelBundle | Classifier:
    if isinstance(result, (ModelBundle, Classifier)):
        return result
    if isinstance(result, dict):
        known = {f.name for f in fields(ModelBundle)}
        unknown = sorted(set(result) - known)
        if unknown or "model" not in result or "input_size" not in result:
            raise InputError(f"{where} returned a dict with keys {sorted(result)}; it needs 'model' and "
                             f"'input_size' and may have {', '.join(sorted(known - {'model', 'input_size'}))}")
        return ModelBundle(**result)
    raise InputError(f"{where} returned {type(result).__name__}; it must return a "
                     "physadv.classifiers.ModelBundle, a dict of its fields, or a physadv Classifier")


def _check_bundle(bundle: ModelBundle, where: str) -> tuple[int, int]:
    if not isinstance(bundle.model, nn.Module):
        raise InputError(f"{where}: 'model' must be a torch.nn.Module, got {type(bundle.model).__name__}")
    size = bundle.input_size
    size = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_INPUT_SIDE for s in size)):
        raise InputError(f"{where}: 'input_size' must be a side or (height, width) of whole numbers in "
                         f"1..{MAX_INPUT_SIDE}, got {bundle.input_size!r}")
    for key in ("mean", "std"):
        values = getattr(bundle, key)
        if not (isinstance(values, (tuple, list)) and len(values) == 3
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)):
            raise InputError(f"{where}: '{key}' must be three finite numbers, got {values!r}")
    if not all(v > 0 for v in bundle.std):
        raise InputError(f"{where}: 'std' must be positive, got {bundle.std!r}")
    if bundle.interpolation not in ("bilinear", "bicubic"):
        raise InputError(f"{where}: 'interpolation' must be bilinear or bicubic, got {bundle.interpolation!r}")
    if not (isinstance(bundle.crop_pct, (int, float)) and 0 < bundle.crop_pct <= 1):
        raise InputError(f"{where}: 'crop_pct' must be in (0, 1], got {bundle.crop_pct!r}")
    return int(size[0]), int(size[1])


def _user_factory(spec: str, weights: str | Path | None) -> Classifier:
    path, factory_name = _split_file_spec(spec)
    if not path.is_file():
        raise InputError(f"--model {spec}: {path} does not exist")
    module_name = "physadv_user_model_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # the user's code: report it in one line (sys.exit(0) is no success)
        sys.modules.pop(module_name, None)
        raise InputError(f"--model {spec}: importing {path} failed ({describe_error(error)})") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise InputError(f"--model {spec}: {path} has no function {factory_name}()")
    where = f"{path.name}:{factory_name}()"
    try:
        result = factory()
    except (Exception, SystemExit) as error:
        raise InputError(f"--model {spec}: {where} raised {describe_error(error)}") from None
    bundle = _bundle_from(result, where)
    choice = _weights_choice(weights)
    if isinstance(bundle, Classifier):
        if isinstance(choice, Path):
            _apply_weights(bundle.model, choice, where)
        return bundle
    size = _check_bundle(bundle, where)
    if isinstance(choice, Path):
        _apply_weights(bundle.model, choice, where)
    if bundle.labels is not None:
        if not all(isinstance(n, str) and n.strip() for n in bundle.labels):
            raise InputError(f"{where}: 'labels' must be non-empty class names")
        labels = _labels_from_names([n.strip() for n in bundle.labels], f"{where}: 'labels'")
    else:
        try:
            with torch.no_grad():
                count = bundle.model.eval()(torch.zeros(1, 3, *size)).shape[-1]
        except (Exception, SystemExit) as error:
            raise InputError(f"--model {spec}: {where}'s model raised {describe_error(error)}"[:500]) from None
        labels = default_labels(int(count))
    return _classifier(bundle.model, name=bundle.name or f"{path.stem}:{factory_name}", labels=labels,
                       input_size=size, mean=tuple(bundle.mean), std=tuple(bundle.std),
                       interpolation=bundle.interpolation, crop_pct=float(bundle.crop_pct),
                       weights=str(choice) if isinstance(choice, Path) else (choice or ""))


def load_external(name: str, weights: str | Path | None = None, offline: bool | None = None) -> Classifier:
    """A classifier of one of the three forms (see the module docstring), on the CPU.

    Raises:
        InputError: an unknown model, a factory returning something else, weights of another architecture.
        WeightsNotFoundError: the weights are missing and cannot (or may not) be downloaded.
    """
    offline = is_offline(offline)
    if name.startswith("timm:"):
        return _timm(name.removeprefix("timm:"), weights, offline)
    if name.startswith("torchvision:"):
        return _torchvision(name.removeprefix("torchvision:"), weights, offline)
    if _split_file_spec(name) is not None:
        return _user_factory(name, weights)
    raise InputError(f"unknown model form {name!r}: use timm:NAME, torchvision:NAME or FILE.py:FACTORY")
