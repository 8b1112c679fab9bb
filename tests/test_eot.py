"""EOT: transformation distributions, the EOT gradient and attacks, adversariality (physadv.eot)."""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch

from physadv.attacks import Attack
from physadv.channel import jpeg
from physadv.classifiers import load_classifier
from physadv.datasets import load_image_set, prepare
from physadv.eot import (DISTRIBUTIONS, StraightThroughJPEG, adversariality, distribution, eot_gradient, held_out,
                         mean_gradient)
from physadv.errors import InputError
from physadv.images import to_tensor

TRANSFORMING = [name for name in DISTRIBUTIONS if name != "identity"]


@pytest.fixture(scope="module")
def digits():
    classifier = load_classifier("digits")
    items = prepare(load_image_set("digits", classifier.labels)[:8], classifier.image_size)
    return classifier, to_tensor([i.image for i in items]), torch.tensor([i.label for i in items])


def _random_images(batch: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_user_mistakes_raise_input_error():
    with pytest.raises(InputError, match="unknown EOT distribution"):
        distribution("polaroid")
    with pytest.raises(InputError, match="samples"):
        eot_gradient("photo", samples=0)
    with pytest.raises(InputError, match="chunk"):
        eot_gradient("photo", samples=4, chunk_size=0)
    with pytest.raises(InputError, match="kornia"):
        distribution([torch.nn.Identity()])


def test_users_compose_distributions_from_kornia_modules():
    modules = [K.RandomAffine(degrees=10, p=1.0), K.RandomBrightness((0.9, 1.1), p=1.0)]
    images = _random_images()
    for spec in (modules, K.AugmentationSequential(*modules), modules[0]):
        transforms = distribution(spec)
        params = transforms.sample(len(images), images.shape[1:], seed=1).params
        assert not torch.equal(transforms(images, params), images)


@pytest.mark.parametrize("name", TRANSFORMING)
def test_gradient_reaches_the_input_through_every_transformation(name):
    images = _random_images()
    modules = list(distribution(name).pipeline.children())
    for module in modules + [modules]:
        transforms = distribution(module if isinstance(module, list) else [module])
        params = transforms.sample(len(images), images.shape[1:], seed=3).params
        leaf = images.clone().requires_grad_(True)
        output = transforms(leaf, params)
        weights = torch.randn(output.shape, generator=torch.Generator().manual_seed(4))
        (gradient,) = torch.autograd.grad((output * weights).sum(), leaf)
        assert torch.isfinite(gradient).all(), module
        assert (gradient.flatten(1).abs().sum(1) > 0).all(), f"no gradient through {module}"


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_transformations_keep_images_in_the_unit_range(name):
    images = torch.cat([torch.zeros(1, 3, 32, 32), torch.ones(1, 3, 32, 32), _random_images(2)])
    transforms = distribution(name)
    output = transforms(images, transforms.sample(len(images), images.shape[1:], seed=5).params)
    assert output.shape == images.shape and output.min() >= 0 and output.max() <= 1


@pytest.mark.parametrize("name", TRANSFORMING)
def test_sampling_is_seeded_replayable_and_leaves_the_global_rng_alone(name):
    images = _random_images(4)
    transforms = distribution(name)
    state = torch.get_rng_state()
    first = transforms.sample(4, images.shape[1:], seed=11)
    assert torch.equal(torch.get_rng_state(), state)
    again = distribution(name).sample(4, images.shape[1:], seed=11)
    other = transforms.sample(4, images.shape[1:], seed=12)
    output = transforms(images, first.params)
    assert torch.equal(transforms(images, again.params), output)
    assert torch.equal(transforms(images, first.params), output)
    assert not torch.equal(transforms(images, other.params), output)


@pytest.mark.parametrize("name", TRANSFORMING)
def test_selected_parameters_replay_each_transformation_on_any_image(name):
    images = _random_images(3)
    transforms = distribution(name)
    transformations = transforms.sample(5, images.shape[1:], seed=2)
    image_index, sample_index = torch.tensor([0, 0, 1, 2, 2]), torch.tensor([4, 1, 1, 0, 3])
    batched = transforms(images[image_index], transformations.select(sample_index))
    for k, (i, j) in enumerate(zip(image_index.tolist(), sample_index.tolist())):
        single = transforms(images[i:i + 1], transformations.select(torch.tensor([j])))
        torch.testing.assert_close(batched[k:k + 1], single)


def test_straight_through_jpeg_forward_is_a_real_jpeg_and_backward_the_identity():
    images = _random_images(4, size=24)
    transforms = distribution([StraightThroughJPEG(jpeg_quality=(20.0, 95.0))])
    params = transforms.sample(len(images), images.shape[1:], seed=0).params
    leaf = images.clone().requires_grad_(True)
    output = transforms(leaf, params)
    qualities = params[0].data["jpeg_quality"].round().int().tolist()
    assert len(set(qualities)) > 1
    for k, quality in enumerate(qualities):
        assert torch.equal(output[k:k + 1], jpeg(images[k:k + 1], quality))
    weights = torch.randn_like(output)
    (gradient,) = torch.autograd.grad((output * weights).sum(), leaf)
    assert torch.equal(gradient, weights)


@pytest.mark.parametrize("method", ["fgsm", "bim", "ll", "target"])
def test_identity_eot_equals_the_plain_attack_exactly(digits, method):
    classifier, images, labels = digits
    targets = (labels + 1) % classifier.num_classes
    plain = Attack(method, eps=8, iterations=3)
    eot = plain.with_gradient(eot_gradient("identity", samples=4), eot="identity")
    expected, got = plain(classifier, images, labels, targets), eot(classifier, images, labels, targets)
    assert torch.equal(got.adversarial, expected.adversarial) and torch.equal(got.goal, expected.goal)
    assert got.method == f"{method}+eot" and (got.eps, got.alpha, got.iterations) == (8.0, expected.alpha, expected.iterations)


def test_chunked_mean_gradient_equals_the_mean_of_per_transformation_gradients(digits):
    classifier, images, labels = digits
    images, labels = images[:3], labels[:3]
    transforms = distribution("photo")
    transformations = transforms.sample(5, images.shape[1:], seed=7)
    per_sample = []
    for j in range(5):
        leaf = images.clone().requires_grad_(True)
        transformed = transforms(leaf, transformations.select(torch.full((3,), j)))
        loss = torch.nn.functional.cross_entropy(classifier(transformed), labels, reduction="sum")
        per_sample.append(torch.autograd.grad(loss, leaf)[0])
    expected = torch.stack(per_sample).mean(0)
    assert expected.abs().sum() > 0
    for chunk_size in (1, 4, 15, 64):
        got = mean_gradient(classifier, images, labels, transforms, transformations, chunk_size)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_eot_attacks_are_reproducible_and_their_steps_replayable(digits):
    classifier, images, labels = digits
    images, labels = images[:2], labels[:2]
    attack = Attack("bim", eps=8, iterations=2)
    gradients = [eot_gradient("athalye2018", samples=3, seed=seed) for seed in (0, 0, 1)]
    results = [attack.with_gradient(g, eot="photo")(classifier, images, labels).adversarial for g in gradients]
    assert torch.equal(results[0], results[1]) and not torch.equal(results[0], results[2])
    # The same gradient object attacks a second batch exactly as a fresh one would (resume, rebatching).
    again = attack.with_gradient(gradients[0], eot="photo")(classifier, images[1:], labels[1:]).adversarial
    assert torch.equal(again, results[0][1:])

    step = eot_gradient("athalye2018", samples=3, seed=0)
    got = step(classifier, images, labels, 1)
    transforms = distribution("athalye2018")
    replayed = mean_gradient(classifier, images, labels, transforms,
                             transforms.sample(3, images.shape[1:], step.step_seed(1)))
    assert torch.equal(got, replayed)


def test_adversariality_under_identity_is_plain_success_and_held_out_set_is_fixed(digits):
    classifier, images, labels = digits
    result = Attack("bim", eps=16, iterations=4)(classifier, images, labels)
    success = result.succeeded(classifier(result.adversarial).argmax(-1)).float()
    assert torch.equal(adversariality(classifier, result.adversarial, result.goal, False, "identity", n=3), success)

    targets = (labels + 1) % classifier.num_classes
    as_target = (classifier(images).argmax(-1) == targets).float()
    assert torch.equal(adversariality(classifier, images, targets, True, "identity", n=2), as_target)

    first = adversariality(classifier, result.adversarial, result.goal, False, "photo", n=20, seed=3, chunk_size=7)
    again = adversariality(classifier, result.adversarial, result.goal, False, "photo", n=20, seed=3)
    assert first.shape == (len(images),) and torch.equal(first, again)
    shape = images.shape[1:]
    assert not torch.equal(held_out(distribution("photo"), 4, shape, seed=3).params[0].data["end_points"],
                           held_out(distribution("photo"), 4, shape, seed=4).params[0].data["end_points"])


def test_eot_bim_is_more_adversarial_under_photo_than_plain_bim_at_equal_eps(digits):
    classifier, images, labels = digits
    plain = Attack("bim", eps=16, alpha=2, iterations=20)
    eot = plain.with_gradient(eot_gradient("photo", samples=16), eot="photo")
    rates = {}
    for attack in (plain, eot):
        result = attack(classifier, images, labels)
        assert (result.adversarial - result.clean).abs().max() <= 16 / 255 + 1e-6
        rates[attack.label] = adversariality(classifier, result.adversarial, result.goal, False, "photo").mean()
    assert rates["bim+eot"] > rates["bim"], rates


def test_transformations_run_in_float32_under_autocast():
    images = _random_images().bfloat16()
    transforms = distribution("photo")
    params = transforms.sample(len(images), images.shape[1:], seed=0).params
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = transforms(images, params)
    assert output.dtype == torch.float32 and torch.isfinite(output).all()
