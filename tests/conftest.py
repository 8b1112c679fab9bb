from pathlib import Path

import pytest
import torch
from torch import nn

from physadv.classifiers import Classifier, load_classifier
from physadv.labels import label_space
from physadv.printouts.sheets import SheetLayout, print_attack_set
from printouts_fixtures import SOURCES, make_attack_dir


class LinearModel(nn.Module):
    """logits = W · flatten(x) + b: its input gradient has a closed form."""

    def __init__(self, size: int, classes: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(classes, 3 * size * size, generator=generator) * 0.05)
        self.bias = nn.Parameter(torch.randn(classes, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


@pytest.fixture
def linear_classifier() -> Classifier:
    return Classifier(LinearModel(8, 5), name="linear", labels=label_space("abcde"), input_size=(8, 8))


@pytest.fixture
def tiny_cnn() -> Classifier:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                          nn.Flatten(), nn.Dropout(0.5), nn.Linear(128, 10))
    return Classifier(model, name="tiny", labels=label_space([str(d) for d in range(10)]), input_size=(16, 16))


@pytest.fixture(scope="session")
def digits_classifier() -> Classifier:
    return load_classifier("digits")


@pytest.fixture(scope="session")
def lite0() -> Classifier:
    return load_classifier("efficientnet_lite0")


@pytest.fixture(scope="session")
def attack_dir(tmp_path_factory) -> Path:
    return make_attack_dir(tmp_path_factory.mktemp("attack"), list(SOURCES))


@pytest.fixture(scope="session")
def printed(attack_dir, tmp_path_factory):
    """(out folder, manifest) of the fixture attack printed with the default layout: 2 pages."""
    out = tmp_path_factory.mktemp("sheets")
    return out, print_attack_set(attack_dir, out, SheetLayout(), run_id="cafe0123")


@pytest.fixture(scope="session")
def tiny_lab(tmp_path_factory, digits_classifier) -> dict[str, Path]:
    """Two digits attacked, printed, photographed once and captured (:func:`cli_fixtures.build_tiny_lab`)."""
    from cli_fixtures import build_tiny_lab

    return build_tiny_lab(tmp_path_factory.mktemp("tiny-lab"))
