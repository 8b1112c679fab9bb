import io

import numpy as np
import pytest
import torch
from PIL import Image

from physadv.channel import TRANSFORMS, ChannelTransform, brightness, gaussian_blur, gaussian_noise, jpeg
from physadv.errors import InputError
from physadv.datasets import load_image_set
from physadv.images import square_resize, to_tensor
from physadv.labels import imagenet_labels


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return to_tensor([square_resize(i.image, 96) for i in load_image_set("samples", imagenet_labels(), limit=3)])


@pytest.mark.parametrize("name", [n for n, kind in TRANSFORMS.items() if kind.neutral is not None])
def test_neutral_strength_is_the_identity(photos, name):
    assert torch.equal(ChannelTransform(name, TRANSFORMS[name].neutral)(photos), photos)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_every_transformation_changes_the_image_and_stays_8bit(photos, name):
    strength = TRANSFORMS[name].default_strengths[-1]
    out = ChannelTransform(name, strength)(photos, torch.Generator().manual_seed(0))
    assert out.shape == photos.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out * 255, (out * 255).round())
    assert not torch.equal(out, photos)


def test_brightness_adds_the_offset_where_it_does_not_clip(photos):
    out = brightness(photos, 10)
    inside = photos * 255 <= 245
    assert torch.allclose((out - photos)[inside] * 255, torch.full_like(photos[inside], 10), atol=1e-3)


def test_blur_and_noise_grow_with_strength(photos):
    blur_error = [float((gaussian_blur(photos, s) - photos).abs().mean()) for s in (0.5, 1, 2)]
    assert blur_error == sorted(blur_error)
    noise = [float((gaussian_noise(photos, s, torch.Generator().manual_seed(1)) - photos).std()) for s in (5, 10, 20)]
    assert noise == sorted(noise)


def test_noise_is_reproducible_with_a_seed(photos):
    a = gaussian_noise(photos, 10, torch.Generator().manual_seed(3))
    b = gaussian_noise(photos, 10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_jpeg_is_a_real_codec(photos):
    """Equals a JPEG file written at that quality, and loses more at lower quality."""
    image = (photos[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=50)
    decoded = torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1).float() / 255
    assert torch.equal(jpeg(photos[:1], 50)[0], decoded)
    errors = [float((jpeg(photos, q) - photos).abs().mean()) for q in (90, 50, 10)]
    assert errors == sorted(errors)


@pytest.mark.parametrize("call, message", [
    (lambda x: ChannelTransform("fog", 1)(x), "unknown transformation"),
    (lambda x: jpeg(x, 0), "quality"),
    (lambda x: gaussian_blur(x, -1), "sigma"),
    (lambda x: ChannelTransform("blur", 1)(x * 2), r"\[0, 1\]"),
])
def test_bad_strengths_are_named(photos, call, message):
    with pytest.raises(InputError, match=message):
        call(photos)
