"""Weights files: found, read as tensors only (never code) and loaded strictly into an architecture;
shared by the built-in zoo (:mod:`physadv.classifiers.zoo`) and user models (:mod:`physadv.classifiers.external`)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from physadv.errors import InputError, WeightsNotFoundError


def existing_weights(path: Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file {path} does not exist")
    return path


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        # torch's own message advises weights_only=False, i.e. running the file's code: never say that.
        kind = "holds objects other than tensors" if isinstance(error, pickle.UnpicklingError) else "is corrupt"
        raise InputError(f"{path}: not a readable PyTorch checkpoint: not a state dict (it {kind}; physadv loads "
                         "weights only, never code)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a state dict (parameter name → tensor)")
    return state


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise InputError(f"{path}: these weights do not fit the {name} architecture ({first_line})") from None


def torch_cache_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"
