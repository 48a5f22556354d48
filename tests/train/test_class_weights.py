from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dermtool.train.data import effective_class_weights


def _data(labels, sources=None, shares=(), names=("one",), num_classes=3):
    labels = np.asarray(labels)
    sources = np.zeros(len(labels), dtype=int) if sources is None else np.asarray(sources)
    train = SimpleNamespace(labels=labels, sources=sources)
    return SimpleNamespace(splits={"train": train}, source_names=list(names), source_shares=list(shares),
                           num_classes=num_classes)


def test_one_source_weights_are_balanced_over_the_classes_present() -> None:
    weights = effective_class_weights(_data([0, 0, 0, 1, 2, 2]))
    assert weights == pytest.approx([6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2)])
    # a class without samples: weight 0, and k counts the classes present
    assert effective_class_weights(_data([0, 0, 0, 1])) == pytest.approx([4 / (2 * 3), 4 / (2 * 1), 0.0])


def test_with_shares_the_weights_follow_the_frequencies_batches_have() -> None:
    # source 0: classes 0,0,0,1 (share 0.5); source 1: class 2 only (share 0.5) -> batch frequencies
    # 0.375, 0.125, 0.5, whatever the sources' sizes
    data = _data([0, 0, 0, 1, 2], sources=[0, 0, 0, 0, 1], shares=(1.0, 1.0), names=("a", "b"))
    frequencies = np.array([0.375, 0.125, 0.5])
    assert effective_class_weights(data) == pytest.approx(1 / (3 * frequencies))
    assert float((frequencies * effective_class_weights(data)).sum()) == pytest.approx(1.0)
