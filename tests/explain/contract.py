"""The predict --json contract, checked the same way by every explain test."""

from __future__ import annotations

import json

import pytest

from dermtool.prediction.predictor import CLASS_NAMES

CONTRACT_KEYS = {"image", "outcome", "label", "probability", "probabilities", "top_k", "ood_score", "lesion_check"}


def check_contract(result: dict, labels: list[str], top_k: int) -> None:
    assert set(result) == CONTRACT_KEYS
    assert result["outcome"] in ("benign", "refer", "uncertain", "not_a_lesion")
    assert list(result["probabilities"]) == labels
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    assert result["probability"] == result["probabilities"][result["label"]]
    assert len(result["top_k"]) == top_k
    assert [entry["label"] for entry in result["top_k"]][0] == result["label"]
    probabilities = [entry["probability"] for entry in result["top_k"]]
    assert probabilities == sorted(probabilities, reverse=True)
    for entry in result["top_k"]:
        assert set(entry) == {"label", "name", "probability"}
        assert entry["name"] == CLASS_NAMES[entry["label"]]
    json.dumps(result)  # JSON-serialisable as it is
