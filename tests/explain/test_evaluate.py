"""Localisation of Grad-CAM against lesion masks: the per-image scores and the split evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.explain.evaluate import evaluate_localisation, localisation_scores


def test_localisation_scores_of_a_known_map() -> None:
    mask = np.zeros((10, 20), bool)
    mask[2:6, 5:15] = True  # 40 of 200 pixels
    heatmap = np.zeros((10, 20), np.float32)
    heatmap[3, 6] = 1.0
    heatmap[8, 18] = 0.5
    scores = localisation_scores(heatmap, mask)
    assert scores["hit"] == 1.0
    assert scores["energy_inside"] == pytest.approx(1.0 / 1.5)
    assert scores["mask_area"] == pytest.approx(0.2)
    assert scores["heat_inside"] == pytest.approx(1.0 / 40)
    assert scores["heat_outside"] == pytest.approx(0.5 / 160)
    assert scores["centre_hit"] == 1.0  # (5, 10) is inside
    heatmap[8, 18] = 2.0
    assert localisation_scores(heatmap, mask)["hit"] == 0.0
    with pytest.raises(DermtoolError):
        localisation_scores(heatmap, mask[:5])


def test_evaluate_on_the_runs_split(probe_run: Path, small_ham: Path, masks_dir: Path) -> None:
    report = evaluate_localisation(probe_run, small_ham, masks_dir, split="val", limit=8, progress=False)
    assert report.n == 8 and report.split == "val"
    for value in (report.hit_rate, report.energy_inside, report.mask_area, report.centre_baseline_hit_rate):
        assert 0.0 <= value <= 1.0
    assert report.mean_heat_inside > report.mean_heat_outside
    data = report.to_dict()
    assert set(data) >= {"hit_rate", "energy_inside", "centre_baseline_hit_rate", "n"}
    assert "pointing game" in report.format()


def test_evaluate_refuses_missing_masks(probe_run: Path, small_ham: Path, tmp_path: Path) -> None:
    with pytest.raises(DermtoolError, match="mask folder not found"):
        evaluate_localisation(probe_run, small_ham, tmp_path / "nope", progress=False)
    with pytest.raises(DermtoolError, match="no mask"):
        evaluate_localisation(probe_run, small_ham, tmp_path, progress=False)
