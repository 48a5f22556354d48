"""The representative (calibration) images that int8 export and bias correction use."""

from __future__ import annotations

import numpy as np


def test_representative_images_are_the_stratified_sample_of_the_decoded_training_split(tiny_run):
    from dermtool.export.calibration_data import (
        load_representative_images,
        load_split,
        resolve_data_dir,
        split_records,
        stratified_sample,
    )
    from dermtool.run import RunFolder

    run = RunFolder(tiny_run)
    records = split_records(run, resolve_data_dir(run, None))["train"]
    whole_split = load_split(records, "train", run.input_spec, progress=False)
    count = len(np.unique(whole_split.labels)) * 2
    images = load_representative_images(records, count, run.input_spec, seed=3, progress=False)
    chosen = stratified_sample(whole_split.labels, count, 3)
    assert images.shape == (count, *whole_split.images.shape[1:]) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, whole_split.images[chosen])
    # every class of the split is represented (two each: the sample goes round-robin over the classes)
    assert np.all(np.bincount(whole_split.labels[chosen]) == 2)
