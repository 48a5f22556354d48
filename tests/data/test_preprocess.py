"""The one preprocessing definition: resize policies, load_image on real HAM10000 files, normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.data.preprocess import InputSpec, load_image, normalize, normalize_tf, resize

RED = (220, 30, 40)
BLUE = (20, 40, 210)


def wide_image(height: int = 100, width: int = 200) -> np.ndarray:
    """Blue left and right quarters, a red central square (height x height)."""
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = BLUE
    left = (width - height) // 2
    pixels[:, left : left + height] = RED
    return pixels


def first_image(small_ham: Path) -> Path:
    return sorted((small_ham / "images").glob("*.jpg"))[0]


def test_input_spec_round_trips_through_json() -> None:
    spec = InputSpec(image_size=224, resize_policy="center_crop", mean=127.5, std=128.0)
    restored = InputSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert restored == spec
    assert spec.to_dict() == {"image_size": 224, "resize_policy": "center_crop", "mean": 127.5, "std": 128.0}


@pytest.mark.parametrize(
    "values",
    [
        {"image_size": 0, "resize_policy": "squash", "mean": 0.0, "std": 1.0},
        {"image_size": 64, "resize_policy": "stretch", "mean": 0.0, "std": 1.0},
        {"image_size": 64, "resize_policy": "pad", "mean": 0.0, "std": 0.0},
        {"image_size": 64, "resize_policy": "pad", "mean": 0.0},
    ],
)
def test_input_spec_rejects_bad_values(values: dict) -> None:
    with pytest.raises(DermtoolError):
        InputSpec.from_dict(values)


@pytest.mark.parametrize("policy", ["squash", "center_crop", "pad"])
@pytest.mark.parametrize("shape", [(100, 200), (200, 100), (37, 37), (1, 5)])
def test_every_policy_gives_a_square_uint8_image(policy: str, shape: tuple[int, int]) -> None:
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    result = resize(image, 48, policy)
    assert result.shape == (48, 48, 3) and result.dtype == np.uint8


def test_center_crop_keeps_only_the_central_square() -> None:
    result = resize(wide_image(), 32, "center_crop")
    assert np.all(result == np.array(RED, dtype=np.uint8))


def test_squash_keeps_the_whole_image_without_keeping_its_aspect() -> None:
    result = resize(wide_image(), 32, "squash").astype(int)
    # 200 -> 32 columns: the blue quarters become ~8 columns each, the red half the middle ~16.
    assert np.abs(result[:, :6] - BLUE).max() <= 2 and np.abs(result[:, -6:] - BLUE).max() <= 2
    assert np.abs(result[:, 10:22] - RED).max() <= 2


def test_pad_letterboxes_with_black_borders_and_keeps_the_aspect() -> None:
    image = np.empty((150, 200, 3), dtype=np.uint8)  # 4:3 like HAM10000
    image[:] = (200, 100, 50)
    result = resize(image, 64, "pad").astype(int)
    # 200x150 -> 64x48, centred: 8 black rows above and below, full width.
    assert np.all(result[:8] == 0) and np.all(result[56:] == 0)
    assert np.abs(result[8:56] - (200, 100, 50)).max() <= 1

    tall = resize(np.full((200, 100, 3), 255, dtype=np.uint8), 64, "pad").astype(int)
    assert np.all(tall[:, :16] == 0) and np.all(tall[:, 48:] == 0) and np.all(tall[:, 16:48] >= 254)


def test_resize_of_a_square_image_to_its_own_size_is_identity() -> None:
    image = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    for policy in ("squash", "center_crop", "pad"):
        assert np.array_equal(resize(image, 40, policy), image)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32)],
)
def test_resize_rejects_anything_but_uint8_rgb(bad: np.ndarray) -> None:
    with pytest.raises(DermtoolError):
        resize(bad, 32, "squash")


def test_resize_rejects_an_unknown_policy() -> None:
    with pytest.raises(DermtoolError, match="policy"):
        resize(wide_image(), 32, "stretch")


@pytest.mark.parametrize("policy", ["squash", "center_crop", "pad"])
def test_load_image_on_a_real_ham10000_file(small_ham: Path, policy: str) -> None:
    spec = InputSpec(image_size=64, resize_policy=policy, mean=127.5, std=127.5)
    path = first_image(small_ham)
    image = load_image(path, spec)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.array_equal(image, load_image(path.read_bytes(), spec)), "path and bytes must give the same pixels"
    assert np.array_equal(image, load_image(path, spec)), "deterministic"
    assert image.std() > 5, "a real lesion photo, not a blank"
    if policy == "pad":  # HAM10000 images are 200x150: 8 black rows top and bottom at 64 px
        assert np.all(image[:8] == 0) and np.all(image[-8:] == 0) and image[8:-8].mean() > 30


def test_normalize_numpy_and_tensorflow_are_bit_identical() -> None:
    spec = InputSpec(image_size=16, resize_policy="squash", mean=123.675, std=58.395)
    batch = np.random.default_rng(2).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    batch[0, 0, 0] = (0, 128, 255)
    expected = normalize(batch, spec)
    assert expected.dtype == np.float32
    assert np.array_equal(normalize_tf(batch, spec).numpy(), expected)
    np.testing.assert_allclose(expected[0, 0, 0], (np.array([0, 128, 255]) - 123.675) / 58.395, rtol=1e-6)


def test_normalize_maps_the_pixel_range_as_documented() -> None:
    spec = InputSpec(image_size=8, resize_policy="squash", mean=127.5, std=127.5)
    pixels = np.array([[[[0, 127.5, 255]]]])
    np.testing.assert_allclose(normalize(pixels.astype(np.float32), spec), [[[[-1.0, 0.0, 1.0]]]])


def test_preprocess_does_not_import_tensorflow() -> None:
    """bench, predict and the web app use it on a TFLite model without loading TensorFlow."""
    import subprocess
    import sys

    code = "import sys, dermtool.data.preprocess; sys.exit(1 if 'tensorflow' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
