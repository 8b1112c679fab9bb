"""Classifiers: the :class:`Classifier` wrapper and the built-in, offline model zoo."""

from physadv.classifiers.external import ModelBundle, check_recorded_model
from physadv.classifiers.wrapper import IMAGENET_NORMALISE, Classifier, Normalise
from physadv.classifiers.zoo import DEFAULT_MODEL, MODELS, availability, load_classifier, model_spec

__all__ = ["Classifier", "Normalise", "IMAGENET_NORMALISE", "DEFAULT_MODEL", "MODELS", "availability",
           "load_classifier", "model_spec", "ModelBundle", "check_recorded_model"]
