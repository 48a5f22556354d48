"""bench/report.plot_confusion_matrix: the bench's matrix goes through the run folder's plot (train/plots)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermtool.bench import report


def test_the_bench_confusion_matrix_uses_the_shared_plot_with_melanoma_first(tmp_path: Path, monkeypatch) -> None:
    from dermtool.train import plots

    calls = []
    original = plots.plot_confusion_matrix

    def spy(matrix, labels, path, title="Confusion matrix"):
        calls.append((np.asarray(matrix).tolist(), list(labels), title))
        return original(matrix, labels, path, title=title)

    monkeypatch.setattr(plots, "plot_confusion_matrix", spy)
    results = {"confusion_matrix": {"labels": ["nv", "mel", "bcc"], "matrix": [[5, 1, 0], [2, 3, 0], [0, 1, 4]]}}
    path = report.plot_confusion_matrix(results, tmp_path / "confusion_matrix.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert calls == [([[3, 2, 0], [1, 5, 0], [1, 0, 4]], ["mel", "nv", "bcc"], "Confusion matrix (n=16)")]
