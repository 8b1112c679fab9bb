import math

import pytest
import torch
import torch.nn.functional as F

from physadv.attacks import METHODS, Attack, cross_entropy_gradient, default_iterations, fgsm, least_likely
from physadv.datasets import load_image_set
from physadv.errors import InputError
from physadv.images import to_tensor


def random_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=generator).float() / 255


@pytest.mark.parametrize("eps", [1.0, 4.0, 16.0, 2.5])
def test_fgsm_on_a_linear_model_is_the_closed_form(linear_classifier, eps):
    x = random_images(6, 8)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    weight, bias = linear_classifier.model.weight.detach(), linear_classifier.model.bias.detach()
    p = torch.softmax(x.flatten(1) @ weight.T + bias, dim=-1)
    gradient = ((p - F.one_hot(y, 5).float()) @ weight).view_as(x)  # ∂CE/∂x of a linear model
    expected_levels = (x * 255 + eps * gradient.sign()).clamp(0, 255)
    expected = (x * 255 + torch.trunc(expected_levels - x * 255)) / 255
    result = fgsm(linear_classifier, x, y, eps)
    assert torch.equal(result.adversarial, expected)
    assert result.iterations == 1


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("eps", [0.0, 1.0, 3.5, 16.0])
def test_every_method_stays_in_the_eps_ball_on_8bit_levels(tiny_cnn, method, eps):
    x = random_images(5, 20, seed=int(eps))
    labels = torch.arange(5)
    result = Attack(method, eps)(tiny_cnn, x, labels, targets=torch.full((5,), 7))
    levels = result.adversarial * 255
    assert torch.equal(levels, levels.round())
    assert (result.adversarial - x).abs().max() * 255 <= eps + 1e-4
    assert result.adversarial.min() >= 0 and result.adversarial.max() <= 1
    if eps >= 1:
        assert (result.adversarial != x).any(), "a non-zero budget must change the image"


@pytest.mark.parametrize("eps, expected", [(0, 0), (1, 2), (2, 3), (4, 5), (8, 10), (16, 20), (32, 36), (2.4, 3)])
def test_default_iterations_follow_kurakin(eps, expected):
    assert default_iterations(eps) == expected == math.ceil(min(eps + 4, 1.25 * eps) - 1e-9)


@pytest.mark.parametrize("method", ["bim", "ll", "target"])
@pytest.mark.parametrize("iterations", [None, 3])
def test_iterative_methods_take_every_iteration(tiny_cnn, method, iterations):
    calls = []

    def counting(classifier, images, labels, step):
        calls.append(step)
        return cross_entropy_gradient(classifier, images, labels)

    attack = Attack(method, 8, iterations=iterations).with_gradient(counting)
    result = attack(tiny_cnn, random_images(3, 16), torch.arange(3), targets=torch.zeros(3, dtype=torch.long))
    expected = default_iterations(8) if iterations is None else iterations
    assert calls == list(range(expected)) and expected == result.iterations
    assert result.method == method  # a custom gradient is not EOT: the label stays the method


def test_least_likely_raises_the_least_likely_probability(digits_classifier):
    images = load_image_set("digits", digits_classifier.labels, limit=12)
    x = to_tensor([i.image for i in images])
    clean = digits_classifier.probabilities(x)
    result = least_likely(digits_classifier, x, eps=24)
    target = clean.argmin(-1)
    assert torch.equal(result.goal.cpu(), target)
    before = clean.gather(1, target[:, None])
    after = digits_classifier.probabilities(result.adversarial).gather(1, target[:, None])
    assert (after > before).all()


def test_bim_fools_the_digits_model_and_fgsm_less_often(digits_classifier):
    images = load_image_set("digits", digits_classifier.labels, limit=24)
    x, y = to_tensor([i.image for i in images]), torch.tensor([i.label for i in images])
    accuracy = {}
    for method in ("fgsm", "bim"):
        result = Attack(method, 16)(digits_classifier, x, y)
        accuracy[method] = (digits_classifier.probabilities(result.adversarial).argmax(-1) == y).float().mean()
    clean_accuracy = (digits_classifier.probabilities(x).argmax(-1) == y).float().mean()
    assert accuracy["bim"] < accuracy["fgsm"] < clean_accuracy


def test_attacks_are_deterministic_and_leave_the_model_in_eval_mode(tiny_cnn):
    x, y = random_images(4, 16), torch.arange(4)
    tiny_cnn.model.train()
    first = Attack("bim", 8)(tiny_cnn, x, y).adversarial
    assert not tiny_cnn.model.training
    tiny_cnn.train()
    assert not tiny_cnn.model.training, "the wrapper refuses training mode"
    assert torch.equal(first, Attack("bim", 8)(tiny_cnn, x, y).adversarial)


def test_inputs_off_the_8bit_grid_are_rounded_first(tiny_cnn):
    x = random_images(2, 16) * 0.999 + 0.0003
    result = Attack("bim", 4)(tiny_cnn, x, torch.arange(2))
    assert torch.equal(result.clean, (x * 255).round() / 255)
    assert (result.adversarial - result.clean).abs().max() * 255 <= 4 + 1e-4


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "bim", "eps": -1}, "eps"),
    ({"method": "bim", "eps": 300}, "eps"),
    ({"method": "bim", "eps": 8, "alpha": 0}, "alpha"),
    ({"method": "bim", "eps": 8, "iterations": -2}, "iterations"),
    ({"method": "pgd", "eps": 8}, "unknown attack method"),
])
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        Attack(**kwargs)


@pytest.mark.parametrize("images, labels, message", [
    (random_images(2, 16) * 255, torch.arange(2), r"\[0, 1\]"),
    (random_images(2, 16)[:, :1], torch.arange(2), r"\(B, 3, H, W\)"),
    (random_images(2, 16)[0], torch.arange(2), r"\(B, 3, H, W\)"),
    (random_images(2, 16), torch.tensor([0, 10]), "labels must lie in 0..9"),
    (random_images(2, 16), torch.tensor([0]), "one per image"),
    (random_images(2, 16), torch.tensor([0.0, 1.0]), "integer"),
])
def test_bad_inputs_are_named(tiny_cnn, images, labels, message):
    with pytest.raises(InputError, match=message):
        Attack("bim", 4)(tiny_cnn, images, labels)


def test_targeted_needs_targets_and_untargeted_needs_labels(tiny_cnn):
    with pytest.raises(InputError, match="target"):
        Attack("target", 4)(tiny_cnn, random_images(1, 16))
    with pytest.raises(InputError, match="true labels"):
        Attack("fgsm", 4)(tiny_cnn, random_images(1, 16))
