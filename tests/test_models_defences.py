"""Bring-your-own models (timm, torchvision, file.py:factory), offline mode, transfer attacks, defences."""

import json

import huggingface_hub
import pytest
import torch

from physadv.attacks import Attack
from physadv.classifiers import load_classifier
from physadv.cli.main import main
from physadv.datasets import index_image_set, load_image_set, prepare
from physadv.defences import DEFENCES, DefenceConfig, save_checkpoint, train_defence, training_images
from physadv.errors import InputError, WeightsNotFoundError
from physadv.experiment import ExperimentConfig, experiment_to_folder
from physadv.images import to_tensor
from physadv.lab.model_comparison import masking_flag, transfer_accuracy


@pytest.fixture
def no_downloads(monkeypatch, tmp_path):
    """Empty caches, and downloaders that fail the test if anything calls them."""
    def forbidden(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", forbidden)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", forbidden)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)


@pytest.mark.parametrize("name, size, interpolation", [("timm:resnet10t", 201, "bicubic"),
                                                       ("torchvision:mobilenet_v3_small", 256, "bilinear")])
def test_library_models_run_the_loop_with_their_own_preprocessing(tmp_path, name, size, interpolation, capsys):
    classifier = load_classifier(name, weights="random")
    # timm: 176 px at crop 0.875 (bicubic); torchvision: resize 256, crop 224 (bilinear).
    assert (classifier.image_size, classifier.interpolation) == (size, interpolation)
    weights = tmp_path / "random.pt"
    torch.save(classifier.model.state_dict(), weights)
    adv, sheets, photos, captured = (tmp_path / n for n in ("adv", "sheets", "photos", "captured"))
    model = ["--model", name, "--weights", str(weights)]
    assert main(["attack", "samples", *model, "--limit", "1", "--method", "fgsm", "--eps", "8", "--out", str(adv)]) == 0
    assert json.loads((adv / "attack.json").read_text())["settings"]["image_size"] == size
    assert main(["print", str(adv), "--grid", "2x2", "--out", str(sheets)]) == 0
    assert main(["photograph", str(sheets / "sheets.pdf"), "--out", str(photos), "--n", "1",
                 "--resolution", "720p"]) == 0
    assert main(["capture", str(photos), "--manifest", str(sheets / "manifest.json"), *model,
                 "--out", str(captured)]) == 0
    predictions = (captured / "predictions.csv").read_text().splitlines()
    assert len(predictions) == 1 + 2  # the clean and the adversarial cell


FACTORY = '''
import torch
from torch import nn
from physadv.classifiers import ModelBundle

def good():
    torch.manual_seed(0)
    return ModelBundle(nn.Sequential(nn.Flatten(), nn.Linear(3 * 20 * 20, 3)), input_size=20, mean=(0.5,) * 3,
                       std=(0.5,) * 3, labels=["cat", "dog", "fish"], crop_pct=0.8)

def as_dict():
    return {"model": nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)), "input_size": (8, 8)}

def wrong_type():
    return "a model"

def wrong_keys():
    return {"model": nn.Identity(), "size": 3}

def wrong_size():
    return ModelBundle(nn.Identity(), input_size=0)
'''


def test_file_factory_models_and_clear_errors_for_wrong_returns(tmp_path):
    module = tmp_path / "my_model.py"
    module.write_text(FACTORY)
    good = load_classifier(f"{module}:good")
    assert good.labels.names == ("cat", "dog", "fish") and good.image_size == 25 and good.num_classes == 3
    weights = tmp_path / "w.pt"
    torch.save({k: torch.zeros_like(v) for k, v in good.model.state_dict().items()}, weights)
    assert torch.count_nonzero(load_classifier(f"{module}:good", weights=weights)(torch.rand(1, 3, 25, 25))) == 0
    assert load_classifier(f"{module}:as_dict").labels.names == ("class0", "class1", "class2", "class3")
    for factory, message in [("wrong_type", "returned str"), ("wrong_keys", "needs 'model' and 'input_size'"),
                             ("wrong_size", "'input_size' must be"), ("missing", "has no function missing()")]:
        with pytest.raises(InputError, match=message):
            load_classifier(f"{module}:{factory}")


def test_label_files_are_validated(tmp_path, monkeypatch):
    module = tmp_path / "m.py"
    module.write_text(FACTORY)
    labels = tmp_path / "labels.txt"
    labels.write_text("apple\nbanana\ncherry\n", encoding="utf-8")
    assert load_classifier(f"{module}:good", labels=labels).labels.names == ("apple", "banana", "cherry")
    for text, message in [("apple\nbanana\n", "names 2 classes but the model has 3"),
                          ("apple\n\ncherry\n", "empty class name"), ("a\x1b[2J\nb\nc\n", "printable")]:
        labels.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            load_classifier(f"{module}:good", labels=labels)


def test_offline_never_downloads_and_names_the_missing_file(no_downloads, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PHYSADV_OFFLINE", "1")
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(WeightsNotFoundError, match=str(expected)):
        load_classifier("torchvision:resnet18")
    with pytest.raises(WeightsNotFoundError, match="models--timm--resnet10t.c3_in1k"):
        load_classifier("timm:resnet10t")
    monkeypatch.delenv("PHYSADV_OFFLINE")
    assert main(["attack", "samples", "--model", "torchvision:resnet18", "--offline", "--out", str(tmp_path / "a")]) == 1
    assert str(expected) in capsys.readouterr().err
    # Online, the library's downloader is what gets called (here: the patched one, which fails the test).
    with pytest.raises(WeightsNotFoundError, match="a download was attempted"):
        load_classifier("torchvision:resnet18")


def test_transfer_rows_differ_from_white_box_and_ensembles_are_accepted(digits_classifier, tiny_cnn, tmp_path):
    images = index_image_set(["digits"], digits_classifier.labels, limit=16)
    config = ExperimentConfig(attacks=[Attack("bim", 24)], transforms={"jpeg": [75]})
    white = experiment_to_folder(digits_classifier, images, config, tmp_path / "white", {"run": "white"},
                                 progress=False)
    transfer = experiment_to_folder(
        digits_classifier, images,
        ExperimentConfig(attacks=[Attack("bim", 24)], transforms={"jpeg": [75]}, sources=[tiny_cnn]),
        tmp_path / "transfer", {"run": "transfer"}, progress=False)
    assert {r.source_model for r in white} == {"digits"} and {r.source_model for r in transfer} == {"tiny"}
    assert {r.model for r in transfer} == {"digits"}
    # A random-weights source barely transfers; white-box BIM at ε = 24 fools most digits.
    assert transfer[0].top1_adv > white[0].top1_adv + 0.3
    out = tmp_path / "ensemble"
    assert main(["attack", "digits", "--model", "digits", "--source-model", "digits,digits", "--limit", "4",
                 "--eps", "24", "--out", str(out)]) == 0
    record = json.loads((out / "attack.json").read_text())
    assert record["settings"]["source_model"] == "digits+digits" and record["settings"]["model"] == "digits"
    assert all(image["source_model"] == "digits+digits" for image in record["images"])
    with pytest.raises(InputError, match="other classes"):
        experiment_to_folder(digits_classifier, images,
                             ExperimentConfig(attacks=[Attack("fgsm", 8)], transforms={"jpeg": [75]},
                                              sources=[load_classifier("timm:resnet10t", weights="random")]),
                             tmp_path / "mismatch", {"run": "mismatch"}, progress=False)


@pytest.mark.parametrize("defence", DEFENCES)
def test_every_defence_writes_a_checkpoint_that_loads(defence, tmp_path):
    classifier = load_classifier("digits")
    images, labels = training_images("digits", classifier, limit=48)
    before = {k: v.clone() for k, v in classifier.model.state_dict().items()}
    train_defence(classifier, images, labels, DefenceConfig(defence, epochs=1, batch_size=24, steps=2), progress=False)
    path = save_checkpoint(classifier, tmp_path / f"{defence}.pt", DefenceConfig(defence), "digits")
    loaded = load_classifier("digits", weights=path)
    state = loaded.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in classifier.model.state_dict().items())
    assert any(not torch.equal(state[k], before[k]) for k in before)  # training changed the weights
    assert not loaded.model.training


def test_train_defence_cli_writes_a_checkpoint_for_weights(tmp_path, capsys):
    out = tmp_path / "fgsm-rs.pt"
    assert main(["train-defence", "--model", "digits", "--defence", "fgsm-rs", "--limit", "32", "--epochs", "1",
                 "--out", str(out)]) == 0
    assert main(["attack", "digits", "--model", "digits", "--weights", str(out), "--limit", "2", "--eps", "8",
                 "--out", str(tmp_path / "adv")]) == 0
    assert json.loads((tmp_path / "adv" / "attack.json").read_text())["weights"] == str(out)
    assert main(["train-defence", "--model", "digits", "--defence", "pgd", "--eps", "300", "--out", str(out)]) == 2


def _held_out(classifier, n=100):
    images = prepare(load_image_set("digits", classifier.labels, limit=n), classifier.image_size)
    return to_tensor([i.image for i in images]), torch.tensor([i.label for i in images])


def _accuracy(classifier, images, labels, eps):
    adversarial = Attack("bim", eps)(classifier, images, labels).adversarial
    return float((classifier.probabilities(adversarial).argmax(-1).cpu() == labels).float().mean())


@pytest.mark.slow
@pytest.mark.parametrize("config", [DefenceConfig("fgsm-rs", eps=16, epochs=1, lr=3e-3),
                                    DefenceConfig("pgd", eps=16, epochs=1, steps=3, lr=3e-3)], ids=["fgsm-rs", "pgd"])
def test_adversarial_training_raises_pgd_accuracy(config, digits_classifier):
    x, y = _held_out(digits_classifier)
    undefended = _accuracy(digits_classifier, x, y, 16)  # measured 0.56 on these 100 digits
    defended = load_classifier("digits")
    train_defence(defended, *training_images("digits", defended), config, progress=False)
    # measured: fgsm-rs 0.70, pgd 0.80 (one epoch on the 1347 training digits)
    assert _accuracy(defended, x, y, 16) >= undefended + 0.10


@pytest.mark.slow
def test_distillation_masks_gradients_and_the_flag_fires(digits_classifier):
    x, y = _held_out(digits_classifier)
    distilled = load_classifier("digits")
    config = DefenceConfig("distill", epochs=4, lr=1e-2, temperature=100, batch_size=32)
    train_defence(distilled, *training_images("digits", distilled, limit=400), config, progress=False)
    base_white = _accuracy(digits_classifier, x, y, 32)
    white = _accuracy(distilled, x, y, 32)
    transfer = transfer_accuracy(distilled, digits_classifier, Attack("bim", 32), x, y, 64)
    # measured: base 0.01, distilled white-box 0.82, transferred from the base 0.56
    assert white - base_white > transfer - base_white + 0.1  # the white-box gain shrinks under transfer
    assert masking_flag(white, transfer, len(y))
    assert not masking_flag(base_white, base_white, len(y)) and not masking_flag(0.5, 0.45, 20)


def test_compare_models_writes_one_table_and_a_report_section(tmp_path, digits_classifier, capsys):
    defended = load_classifier("digits")
    train_defence(defended, *training_images("digits", defended, limit=32), DefenceConfig("gradreg", epochs=1),
                  progress=False)
    path = save_checkpoint(defended, tmp_path / "g.pt", DefenceConfig("gradreg"), "digits")
    out = tmp_path / "cmp"
    assert main(["compare-models", "digits", f"digits@{path}", "--images", "digits", "--limit", "6", "--eps", "24",
                 "--adversariality-samples", "2", "--out", str(out)]) == 0
    assert "photo adv" in capsys.readouterr().out
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["digits", "digits@g.pt"]
    assert rows[0]["transfer"] is None and rows[1]["transfer"] is not None
    assert all(r["photo_adv"] is not None and r["destruction_n"] is not None for r in rows)
    assert "Defences, digitally and through the channel" in (out / "report" / "comparison.html").read_text()
