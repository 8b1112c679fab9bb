from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from physadv.classifiers import Classifier, Normalise, load_classifier
from physadv.classifiers.digits import digits_split
from physadv.classifiers.zoo import availability, torchvision_weights_file
from physadv.datasets import load_image_set, prepare
from physadv.errors import InputError, WeightsNotFoundError
from physadv.images import to_tensor
from physadv.labels import imagenet_labels, label_space

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def test_lite0_knows_the_cat_and_the_espresso(lite0):
    images = {i.id: i for i in prepare(load_image_set("samples", lite0.labels), lite0.image_size)}
    probabilities = lite0.probabilities(to_tensor([images["chelsea"].image, images["coffee"].image]))
    top1 = [lite0.labels.name(int(i)) for i in probabilities.argmax(-1)]
    assert top1[0] in CAT_CLASSES
    assert top1[1] == "espresso" and probabilities[1].max() > 0.5


def test_wrapper_resizes_any_size_and_normalises_inside(lite0):
    images = prepare(load_image_set("samples", lite0.labels), 300)[:2]
    x = to_tensor([i.image for i in images])
    assert x.shape[-1] == 300 and lite0.input_size == (224, 224)
    top1 = lite0.probabilities(x).argmax(-1)
    assert lite0.labels.name(int(top1[1])) == "espresso"


def test_digits_model_reaches_97_percent_on_held_out_digits(digits_classifier):
    test = digits_split("test")
    x = torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 255
    accuracy = (digits_classifier.probabilities(x).argmax(-1).numpy() == test.labels).mean()
    assert accuracy >= 0.97
    assert len(test.labels) == 450 and len(digits_split("train").labels) == 1347


def test_any_module_can_be_wrapped():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    classifier = Classifier(model, name="mine", labels=label_space(["a", "b", "c"]), input_size=(4, 4),
                            preprocess=Normalise((0.5,) * 3, (0.25,) * 3))
    x = torch.rand(2, 3, 9, 7)
    expected = model((nn.functional.interpolate(x, (4, 4), mode="bilinear", antialias=True) - 0.5) / 0.25)
    assert torch.allclose(classifier(x), expected)
    assert classifier.probabilities(x).shape == (2, 3)


def _fake_resnet50_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_torchvision_weights_load_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    file_name, _ = torchvision_weights_file("resnet50")
    state = _fake_resnet50_checkpoint(tmp_path / "hub" / "checkpoints" / file_name)
    assert availability("resnet50")[0]
    classifier = load_classifier("resnet50")
    assert torch.equal(classifier.model.fc.weight, state["fc.weight"])
    assert classifier.input_size == (224, 224) and classifier.labels == imagenet_labels()
    assert classifier(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


def test_torchvision_weights_load_from_a_named_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    state = _fake_resnet50_checkpoint(tmp_path / "my-weights.pth")
    classifier = load_classifier("resnet50", weights=tmp_path / "my-weights.pth")
    assert torch.equal(classifier.model.conv1.weight, state["conv1.weight"])


@pytest.mark.parametrize("name", ["inception_v3", "vgg16", "resnet50"])
def test_missing_torchvision_weights_say_where_to_put_the_file(tmp_path, monkeypatch, name):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    file_name, url = torchvision_weights_file(name)
    with pytest.raises(WeightsNotFoundError) as error:
        load_classifier(name)
    message = str(error.value)
    assert str(tmp_path / "hub" / "checkpoints" / file_name) in message and url in message and "--weights" in message
    assert availability(name)[0] is False


def test_wrong_or_corrupt_weights_are_clear_errors(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        load_classifier("resnet50", weights=corrupt)
    foreign = tmp_path / "foreign.pth"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(InputError, match="do not fit the resnet50 architecture"):
        load_classifier("resnet50", weights=foreign)
    with pytest.raises(InputError, match="not an EfficientNet-Lite0"):
        load_classifier("efficientnet_lite0", weights=foreign)
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        load_classifier("vgg16", weights=tmp_path / "nowhere.pth")
    with pytest.raises(InputError, match="unknown model"):
        load_classifier("alexnet")


def test_imagenet_labels_map_index_wnid_and_name():
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels.index("n01440764") == 0 == labels.index("tench")
    assert labels.index("great_white_shark") == 2 == labels.index("Great White Shark")
    assert labels.wnid(967) == "n07920052" and labels.name(967) == "espresso"
    assert labels.index(5) == 5 and labels.index("7") == 7
    with pytest.raises(KeyError, match="unknown class"):
        labels.index("unicorn")
    with pytest.raises(KeyError, match="out of range"):
        labels.index(1000)


@pytest.mark.parametrize("relative, expected", [
    ("n01440764_tench.JPEG", 0),
    ("n01440764/img_001.jpg", 0),
    ("goldfish/photo.png", 1),
    ("espresso_3.png", 967),
    ("012_great_white_shark.png", 2),
    ("holiday/photo.png", None),
])
def test_labels_from_file_and_folder_names(relative, expected):
    assert imagenet_labels().label_of_path(Path("/data") / relative) == expected


def test_folder_input_reads_labels_and_rejects_bad_files(tmp_path):
    from physadv.images import write_png

    write_png(tmp_path / "espresso" / "a.png", np.zeros((10, 12, 3), np.uint8))
    write_png(tmp_path / "n01443537_goldfish.png", np.zeros((5, 5, 3), np.uint8))
    images = load_image_set(tmp_path, imagenet_labels())
    assert {i.id: i.label for i in images} == {"espresso_a": 967, "n01443537_goldfish": 1}
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(InputError, match="broken.jpg: not a readable image"):
        load_image_set(tmp_path, imagenet_labels())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        load_image_set(tmp_path / "empty", imagenet_labels())


def test_16_bit_grey_images_keep_their_tones(tmp_path):
    from PIL import Image

    from physadv.images import read_rgb

    ramp = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    rgb = read_rgb(tmp_path / "ramp.png")
    assert rgb.shape == (16, 16, 3)
    assert np.abs(rgb[..., 0].astype(int) - (ramp >> 8)).max() == 0
