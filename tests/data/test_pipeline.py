"""The input pipeline: decoding into memory, the tf.data dataset, and the batch augmentation.

Augmentation batches have 8 images of 64x64 wherever possible: the XLA-compiled warp compiles once per shape.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dermtool import DermtoolError
from dermtool.config import AugmentConfig
from dermtool.data.pipeline import augment_batch, load_images, make_dataset, warp_affine
from dermtool.data.preprocess import InputSpec, load_image, normalize

SIZE = 64
SPEC = InputSpec(image_size=SIZE, resize_policy="squash", mean=127.5, std=127.5)
ALL_OFF = AugmentConfig(
    rotation_degrees=0.0, horizontal_flip=False, vertical_flip=False, zoom=0.0,
    brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0,
)
ONLY = {
    "rotation_degrees": dataclasses.replace(ALL_OFF, rotation_degrees=180.0),
    "horizontal_flip": dataclasses.replace(ALL_OFF, horizontal_flip=True),
    "vertical_flip": dataclasses.replace(ALL_OFF, vertical_flip=True),
    "zoom": dataclasses.replace(ALL_OFF, zoom=0.3),
    "brightness": dataclasses.replace(ALL_OFF, brightness=0.1),
    "contrast": dataclasses.replace(ALL_OFF, contrast=0.3),
    "saturation": dataclasses.replace(ALL_OFF, saturation=0.5),
    "hue": dataclasses.replace(ALL_OFF, hue=0.1),
}


def labelled_paths(small_ham: Path) -> tuple[list[Path], list[int], list[str]]:
    with open(small_ham / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    classes = sorted({row["dx"] for row in rows})
    paths = [small_ham / "images" / f"{row['image_id']}.jpg" for row in rows]
    return paths, [classes.index(row["dx"]) for row in rows], classes


@pytest.fixture(scope="module")
def ham(small_ham: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 84 real images decoded at 64x64 and their labels (7 classes x 12)."""
    paths, labels, _ = labelled_paths(small_ham)
    images, failed = load_images(paths, SPEC, progress=False)
    assert failed == []
    return images, np.array(labels)


def mid_range_batch() -> np.ndarray:
    """Smooth colourful images with every value in [60, 190]: no clipping under mild colour jitter."""
    rows, columns = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    image = np.stack([60 + 130 * columns, 60 + 130 * rows, 190 - 130 * (rows * columns)], axis=-1)
    variants = [image, image[::-1], image[:, ::-1], image.transpose(1, 0, 2)]
    return np.stack(variants + [variant[..., ::-1] for variant in variants]).astype(np.uint8)


# --------------------------------------------------------------------------------------------- load_images


def test_load_images_skips_broken_files_and_lists_them(small_ham: Path, tmp_path: Path) -> None:
    paths, _, _ = labelled_paths(small_ham)
    paths = paths[:10]
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(paths[0].read_bytes()[:600])
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is not a photo\n")
    missing = tmp_path / "missing.jpg"
    mixed = [paths[0], truncated, *paths[1:5], not_an_image, missing, *paths[5:]]

    images, failed = load_images(mixed, SPEC, workers=3, progress=False)

    assert images.shape == (10, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert [path for path, _ in failed] == [truncated, not_an_image, missing]
    reasons = dict(failed)
    assert reasons[truncated] == "truncated"
    assert reasons[not_an_image] == "not_an_image"
    assert reasons[missing] == "unreadable"
    for position in (0, 4, 9):  # order of the good files is kept
        assert np.array_equal(images[position], load_image(paths[position], SPEC))


def test_load_images_of_nothing() -> None:
    images, failed = load_images([], SPEC, progress=False)
    assert images.shape == (0, SIZE, SIZE, 3) and failed == []


# -------------------------------------------------------------------------------------------- make_dataset


def test_evaluation_dataset_yields_every_image_in_order(ham: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = ham
    batches = list(make_dataset(images, labels, 7, 32, training=False, augment=AugmentConfig(), spec=SPEC))
    assert [len(x) for x, _ in batches] == [32, 32, 20]
    x = np.concatenate([x.numpy() for x, _ in batches])
    y = np.concatenate([y.numpy() for _, y in batches])
    assert x.dtype == np.float32 and y.dtype == np.float32 and y.shape == (84, 7)
    assert np.array_equal(x, normalize(images, SPEC)), "no augmentation, exactly the shared normalisation"
    assert np.array_equal(y.sum(axis=1), np.ones(84)) and set(np.unique(y)) == {0.0, 1.0}
    assert np.array_equal(y.argmax(axis=1), labels)


def test_training_dataset_shapes_and_one_hot(ham: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = ham
    dataset = make_dataset(images, labels, 7, 32, training=True, augment=AugmentConfig(), spec=SPEC, seed=1)
    assert dataset.element_spec[0].shape.as_list() == [None, SIZE, SIZE, 3]
    assert dataset.element_spec[1].shape.as_list() == [None, 7]
    sizes = []
    for x, y in dataset:
        assert x.dtype == tf.float32 and y.dtype == tf.float32
        assert -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
        assert np.array_equal(y.numpy().sum(axis=1), np.ones(len(y)))
        sizes.append(len(x))
    assert sizes == [32, 32, 20]


def test_training_is_deterministic_for_a_seed_and_changes_every_epoch(ham: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = ham

    def epochs(seed: int, count: int = 2) -> list[np.ndarray]:
        dataset = make_dataset(images, labels, 7, 32, training=True, augment=AugmentConfig(), spec=SPEC, seed=seed)
        return [np.concatenate([x.numpy() for x, _ in dataset]) for _ in range(count)]

    first, second = epochs(seed=3), epochs(seed=3)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1]), "each epoch gets a new shuffle and new augmentation"
    assert not np.array_equal(epochs(seed=4, count=1)[0], first[0])
    assert not np.allclose(np.sort(first[0].ravel()), np.sort(normalize(images, SPEC).ravel())), "augmented"


def test_shuffling_without_augmentation_is_a_permutation_per_epoch() -> None:
    count = 50
    images = np.repeat(np.arange(count, dtype=np.uint8)[:, None, None, None], 8, axis=1)
    images = np.repeat(np.repeat(images, 8, axis=2), 3, axis=3)  # image i is filled with the value i
    labels = np.arange(count) % 3
    spec = InputSpec(image_size=8, resize_policy="squash", mean=0.0, std=1.0)
    dataset = make_dataset(images, labels, 3, 16, training=True, augment=None, spec=spec, seed=0)
    orders = []
    for _ in range(2):
        batches = [(x.numpy()[:, 0, 0, 0].astype(int), y.numpy().argmax(axis=1)) for x, y in dataset]
        for image_ids, batch_labels in batches:
            assert np.array_equal(batch_labels, labels[image_ids]), "labels travel with their images"
        seen = np.concatenate([image_ids for image_ids, _ in batches])
        assert sorted(seen) == list(range(count))
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], np.arange(count))


def test_class_balanced_sampling_is_roughly_uniform_on_an_imbalanced_set() -> None:
    labels = np.array([0] * 70 + [1] * 20 + [2] * 6 + [3] * 4)  # 100 images, 70 % class 0
    images = np.repeat(np.arange(100, dtype=np.uint8)[:, None, None, None], 8, axis=1)
    images = np.repeat(np.repeat(images, 8, axis=2), 3, axis=3)
    spec = InputSpec(image_size=8, resize_policy="squash", mean=0.0, std=1.0)
    dataset = make_dataset(images, labels, 5, 32, training=True, augment=None, spec=spec, seed=0,
                           class_balanced_sampling=True)
    drawn = []
    for _ in range(10):
        batches = [(x.numpy()[:, 0, 0, 0].astype(int), y.numpy().argmax(axis=1)) for x, y in dataset]
        epoch_images = [image_ids for image_ids, _ in batches]
        epoch_labels = [batch_labels for _, batch_labels in batches]
        assert sum(len(batch) for batch in epoch_labels) == 100, "an epoch is as long as the data set"
        drawn.append(np.concatenate(epoch_labels))
        for image_ids, batch_labels in zip(epoch_images, epoch_labels):
            assert np.array_equal(labels[image_ids], batch_labels)
    counts = np.bincount(np.concatenate(drawn), minlength=5)
    assert counts[4] == 0, "a class with no images is never drawn"
    assert np.all(np.abs(counts[:4] - 250) < 60), counts  # 1000 draws over 4 classes
    assert not np.array_equal(drawn[0], drawn[1])


def test_make_dataset_rejects_mismatched_inputs(ham: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = ham
    with pytest.raises(DermtoolError, match="shape"):
        make_dataset(images, labels, 7, 8, False, None, InputSpec(96, "squash", 127.5, 127.5))
    with pytest.raises(DermtoolError, match="labels"):
        make_dataset(images, labels[:-1], 7, 8, False, None, SPEC)
    with pytest.raises(DermtoolError, match=r"\[0, 5\)"):
        make_dataset(images, labels, 5, 8, False, None, SPEC)
    with pytest.raises(DermtoolError, match="zoom"):
        make_dataset(images, labels, 7, 8, True, dataclasses.replace(ALL_OFF, zoom=-0.1), SPEC)


# ------------------------------------------------------------------------------------------ augment_batch


def test_augmentation_is_deterministic_for_a_seed(ham: tuple[np.ndarray, np.ndarray]) -> None:
    batch = ham[0][:8]
    first = augment_batch(batch, AugmentConfig(), seed=7).numpy()
    assert np.array_equal(first, augment_batch(batch, AugmentConfig(), seed=7).numpy())
    assert not np.array_equal(first, augment_batch(batch, AugmentConfig(), seed=8).numpy())
    assert first.dtype == np.float32 and first.shape == batch.shape
    assert first.min() >= 0.0 and first.max() <= 255.0


def test_everything_off_is_the_identity(ham: tuple[np.ndarray, np.ndarray]) -> None:
    batch = ham[0][:8]
    assert np.array_equal(augment_batch(batch, ALL_OFF, seed=1).numpy(), batch.astype(np.float32))
    assert np.array_equal(augment_batch(batch, None, seed=1).numpy(), batch.astype(np.float32))


@pytest.mark.parametrize("name", list(ONLY))
def test_each_transform_alone_changes_images(name: str, ham: tuple[np.ndarray, np.ndarray]) -> None:
    batch = ham[0][:8]
    augmented = augment_batch(batch, ONLY[name], seed=5).numpy()
    changed = [not np.allclose(augmented[i], batch[i], atol=1.0) for i in range(len(batch))]
    assert sum(changed) >= (2 if "flip" in name else 6), f"{name} changed only {sum(changed)} of 8 images"


@pytest.mark.parametrize("name", list(ONLY))
def test_switching_one_transform_off_keeps_the_others_draws(name: str) -> None:
    """All on but one == the same seed with that one's value set to off: each switch is independent."""
    batch = mid_range_batch()
    config = AugmentConfig(rotation_degrees=30.0, zoom=0.2, brightness=0.05, contrast=0.1, saturation=0.1, hue=0.02)
    without = dataclasses.replace(config, **{name: getattr(ALL_OFF, name)})
    others_only = {key: getattr(without, key) for key in ONLY if key != name}
    expected = augment_batch(batch, dataclasses.replace(ALL_OFF, **others_only), seed=11).numpy()
    np.testing.assert_allclose(augment_batch(batch, without, seed=11).numpy(), expected, atol=1e-4)


def test_flips_only_mirror_images_exactly(ham: tuple[np.ndarray, np.ndarray]) -> None:
    batch = np.concatenate([ham[0][:8], ham[0][8:16]])
    horizontal = augment_batch(batch, ONLY["horizontal_flip"], seed=2).numpy()
    vertical = augment_batch(batch, ONLY["vertical_flip"], seed=2).numpy()
    for index, image in enumerate(batch.astype(np.float32)):
        assert np.array_equal(horizontal[index], image) or np.array_equal(horizontal[index], image[:, ::-1])
        assert np.array_equal(vertical[index], image) or np.array_equal(vertical[index], image[::-1])
    flipped = sum(not np.array_equal(horizontal[i], batch[i]) for i in range(16))
    assert 3 <= flipped <= 13, flipped


def test_rotation_turns_about_the_centre_with_reflected_corners() -> None:
    size = 65  # odd: the centre is a pixel
    rows, columns = np.mgrid[0:size, 0:size]
    image = np.stack([60 + 2 * columns, 60 + 2 * rows, 120 + 0 * rows], axis=-1).astype(np.uint8)
    batch = np.stack([image] * 8)
    rotated = augment_batch(batch, ONLY["rotation_degrees"], seed=3).numpy()
    np.testing.assert_allclose(rotated[:, 32, 32], np.broadcast_to(image[32, 32], (8, 3)), atol=1e-2)
    assert rotated.min() >= 59.9, "reflect fill: no black corners"
    assert all(not np.allclose(rotated[i], image, atol=1.0) for i in range(8))


def test_zoom_magnifies_by_at_most_the_configured_fraction() -> None:
    columns = np.arange(SIZE, dtype=np.float32)
    ramp = np.broadcast_to((60 + 2 * columns)[None, :, None], (SIZE, SIZE, 3)).astype(np.uint8)
    zoomed = augment_batch(np.stack([ramp] * 8), ONLY["zoom"], seed=4).numpy()
    slopes = np.diff(zoomed[:, SIZE // 2, :, 0], axis=1).mean(axis=1) / 2.0  # 1.0 = unchanged scale
    assert np.all(slopes <= 1.0 + 1e-4) and np.all(slopes >= 0.7 - 1e-4), slopes  # zoom=0.3: side >= 0.7
    assert slopes.min() < 0.97
    assert zoomed.min() >= 60 - 1e-3 and zoomed.max() <= 60 + 2 * (SIZE - 1) + 1e-3, "a crop stays inside"


def test_brightness_only_shifts_each_image_by_one_offset() -> None:
    batch = mid_range_batch()
    shifted = augment_batch(batch, ONLY["brightness"], seed=6).numpy()
    difference = shifted - batch.astype(np.float32)
    for index in range(len(batch)):
        assert np.ptp(difference[index]) < 1e-3 and abs(difference[index].mean()) <= 25.5 + 1e-3
    assert len({round(float(difference[i].mean()), 3) for i in range(len(batch))}) == len(batch)


def test_contrast_only_keeps_each_channel_mean() -> None:
    batch = mid_range_batch()
    adjusted = augment_batch(batch, ONLY["contrast"], seed=6).numpy()
    np.testing.assert_allclose(adjusted.mean(axis=(1, 2)), batch.mean(axis=(1, 2)), atol=1e-2)
    assert not np.allclose(adjusted.std(axis=(1, 2)), batch.std(axis=(1, 2)), atol=0.1)


@pytest.mark.parametrize("name", ["saturation", "hue"])
def test_saturation_and_hue_leave_grey_grey_and_keep_luma(name: str) -> None:
    grey = np.repeat(np.linspace(40, 200, 8 * SIZE * SIZE).reshape(8, SIZE, SIZE, 1), 3, axis=3).astype(np.uint8)
    np.testing.assert_allclose(augment_batch(grey, ONLY[name], seed=9).numpy(), grey, atol=1e-3)
    batch = mid_range_batch()
    adjusted = augment_batch(batch, ONLY[name], seed=9).numpy()
    luma = np.array([0.299, 0.587, 0.114])
    unclipped = np.all((adjusted > 0.0) & (adjusted < 255.0), axis=-1)  # strong hue turns can leave the gamut
    assert unclipped.mean() > 0.9
    np.testing.assert_allclose((adjusted @ luma)[unclipped], (batch.astype(np.float64) @ luma)[unclipped], atol=1e-2)
    assert np.abs(adjusted - batch).max() > 2.0


def test_warp_matches_tensorflows_projective_transform_kernel(ham: tuple[np.ndarray, np.ndarray]) -> None:
    """The XLA warp and tf.raw_ops.ImageProjectiveTransformV3 (bilinear, reflect) agree."""
    batch = ham[0][:8].astype(np.float32)
    rng = np.random.default_rng(0)
    angle, scale = rng.uniform(-3, 3, 8), rng.uniform(0.6, 1.4, 8)
    transforms = np.stack(
        [scale * np.cos(angle), -scale * np.sin(angle), rng.uniform(-40, 40, 8),
         scale * np.sin(angle), scale * np.cos(angle), rng.uniform(-40, 40, 8), 0 * angle, 0 * angle], axis=1,
    ).astype(np.float32)
    reference = tf.raw_ops.ImageProjectiveTransformV3(
        images=batch, transforms=transforms, output_shape=[SIZE, SIZE], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT",
    ).numpy()
    np.testing.assert_allclose(warp_affine(batch, transforms).numpy(), reference, atol=0.05)


def test_the_images_are_converted_to_a_tensor_once_per_array() -> None:
    """The trainer builds a dataset per epoch: the (large) array must not be copied into TensorFlow each time."""
    import gc

    from dermtool.data import pipeline

    spec = InputSpec(image_size=8, resize_policy="squash", mean=0.0, std=1.0)
    images = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    first = pipeline._images_tensor(images)
    make_dataset(images, np.arange(10) % 2, 2, 4, training=False, augment=None, spec=spec)
    assert pipeline._images_tensor(images) is first
    key = id(images)
    del images, first
    gc.collect()
    assert key not in pipeline._TENSOR_CACHE, "the cached copy goes with its array"


def test_source_shares_set_each_sources_part_of_every_epoch() -> None:
    """90 images of source 0 and 10 of source 1 at shares 0.6 / 0.4: about 40 % of the draws are source 1's,
    and with class balancing too, the classes within each source are drawn evenly."""
    sources = np.array([0] * 90 + [1] * 10)
    labels = np.array([0] * 80 + [1] * 10 + [2] * 8 + [0] * 2)
    images = np.repeat(np.arange(100, dtype=np.uint8)[:, None, None, None], 4, axis=1)
    images = np.repeat(np.repeat(images, 4, axis=2), 3, axis=3)
    spec = InputSpec(image_size=4, resize_policy="squash", mean=0.0, std=1.0)
    for balanced in (False, True):
        dataset = make_dataset(images, labels, 3, 50, training=True, augment=None, spec=spec, seed=0,
                               class_balanced_sampling=balanced, source_ids=sources, source_shares=[0.6, 0.4])
        ids = np.concatenate([x.numpy()[:, 0, 0, 0].astype(int) for _ in range(20) for x, _ in dataset])
        assert len(ids) == 20 * 100
        share = (sources[ids] == 1).mean()
        assert abs(share - 0.4) < 0.04, share
        if balanced:  # source 0: classes 0 and 1 evenly (0.3 each); source 1: classes 2 and 0 (0.2 each)
            from_zero = labels[ids][sources[ids] == 0]
            assert abs((from_zero == 1).mean() - 0.5) < 0.05
    with pytest.raises(DermtoolError, match="source index"):
        make_dataset(images, labels, 3, 50, training=True, augment=None, spec=spec, source_ids=sources[:5],
                     source_shares=[0.5, 0.5])


def test_images_per_epoch_sets_the_draws_of_a_training_epoch_not_of_evaluation() -> None:
    """An epoch of 130 draws over 100 images: sampled by source shares, or fresh shuffles cut at 130 (every
    image once before any twice); evaluation still reads each image once."""
    sources = np.array([0] * 90 + [1] * 10)
    labels = np.array([0] * 50 + [1] * 50)
    images = np.repeat(np.arange(100, dtype=np.uint8)[:, None, None, None], 4, axis=1)
    images = np.repeat(np.repeat(images, 4, axis=2), 3, axis=3)
    spec = InputSpec(image_size=4, resize_policy="squash", mean=0.0, std=1.0)
    for shares in ([0.5, 0.5], None):
        dataset = make_dataset(images, labels, 2, 32, training=True, augment=None, spec=spec, seed=1,
                               source_ids=sources if shares else None, source_shares=shares, images_per_epoch=130)
        ids = np.concatenate([x.numpy()[:, 0, 0, 0].astype(int) for x, _ in dataset])
        assert len(ids) == 130
        if shares is None:
            assert sorted(ids[:100]) == list(range(100))
        else:
            assert 0.3 < (sources[ids] == 1).mean() < 0.7
    evaluation = make_dataset(images, labels, 2, 32, training=False, augment=None, spec=spec, images_per_epoch=130)
    assert sum(len(y) for _, y in evaluation) == 100
