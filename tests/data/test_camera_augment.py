"""Camera augmentation on real phone photos: random per seed, repeatable, in range, and never in evaluation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.config import AugmentConfig
from dermtool.data.camera_augment import CAMERA_FIELDS, camera_augment
from dermtool.data.pipeline import augment_batch, make_dataset
from dermtool.data.preprocess import InputSpec, load_image

SPEC = InputSpec(image_size=96, resize_policy="squash", mean=127.5, std=127.5)
CAMERA = AugmentConfig(rotation_degrees=0, horizontal_flip=False, vertical_flip=False, zoom=0, brightness=0,
                       contrast=0, saturation=0, hue=0, zoom_out=0.3, shift=0.1, white_balance=0.1, vignette=0.3,
                       blur=1.5, motion_blur=5, noise=0.02, downscale=0.5, jpeg_quality=40, grid=0.2)


@pytest.fixture(scope="module")
def phone_images(small_pad: Path) -> np.ndarray:
    paths = sorted((small_pad / "images").glob("*.jpg"))[:8]
    return np.stack([load_image(path, SPEC) for path in paths])


def test_each_transform_changes_images_and_keeps_them_in_range(phone_images: np.ndarray) -> None:
    off = AugmentConfig(**{**vars(CAMERA), **{name: 0 for name in CAMERA_FIELDS}})
    for name in CAMERA_FIELDS:
        alone = replace(off, **{name: getattr(CAMERA, name)})
        out = augment_batch(phone_images, alone, seed=5).numpy()
        assert out.shape == phone_images.shape and 0.0 <= out.min() and out.max() <= 255.0, name
        per_image = np.abs(out - phone_images).mean(axis=(1, 2, 3))
        assert per_image.max() > 0.5, f"{name} changed nothing"


def test_the_same_seed_repeats_and_another_seed_differs(phone_images: np.ndarray) -> None:
    first = augment_batch(phone_images, CAMERA, seed=1).numpy()
    np.testing.assert_array_equal(first, augment_batch(phone_images, CAMERA, seed=1).numpy())
    assert np.abs(first - augment_batch(phone_images, CAMERA, seed=2).numpy()).mean() > 1.0
    # statistics stay those of a photo: mean brightness moves by less than a fifth of the scale
    assert abs(first.mean() - phone_images.mean()) < 0.2 * 255


def test_evaluation_batches_are_never_augmented(phone_images: np.ndarray) -> None:
    labels = np.arange(len(phone_images)) % 3
    (batch, _), = list(make_dataset(phone_images, labels, 3, 8, training=False, augment=CAMERA, spec=SPEC))
    expected = (phone_images.astype(np.float32) - 127.5) / 127.5
    np.testing.assert_allclose(batch.numpy(), expected, atol=1e-6)


def test_out_of_range_values_are_errors_naming_the_key(phone_images: np.ndarray) -> None:
    for name, value in (("downscale", 1.0), ("jpeg_quality", 120), ("blur", -1.0), ("motion_blur", 99)):
        with pytest.raises(DermtoolError, match=f"augment.{name}"):
            camera_augment(phone_images.astype(np.float32), replace(CAMERA, **{name: value}), seed=0)
