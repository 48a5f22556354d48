"""An int8 export of a model with the lesion check calibrates on non-lesions too (generated images and skin
beside real lesions), so that its second head's ranges cover what it must reject."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermtool.data.layouts import read_dataset
from dermtool.data.preprocess import InputSpec
from dermtool.export.calibration_data import non_lesion_images


def test_non_lesion_images_are_generated_images_and_skin_of_real_photos(small_ham: Path) -> None:
    spec = InputSpec(image_size=64, resize_policy="squash", mean=127.0, std=128.0)
    records = [(record.image_id, record.path, 0) for record in read_dataset(small_ham).records[:20]]
    images = non_lesion_images(records, 12, spec, seed=0)
    assert images.shape == (12, 64, 64, 3) and images.dtype == np.uint8
    assert len({image.tobytes() for image in images}) == 12  # no image twice
    assert np.array_equal(images, non_lesion_images(records, 12, spec, seed=0))  # reproducible
    assert non_lesion_images(records, 0, spec).shape == (0, 64, 64, 3)
