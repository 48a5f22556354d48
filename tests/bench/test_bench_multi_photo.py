"""benchmarks/bench_multi_photo.py on a real (tiny) run of MILK10k's two kinds of photo: every rule and each
kind alone on the lesions of the val and test splits, the rule chosen on validation, RUN/multi_photo.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.bench.conftest import load_benchmark_script

bench_multi_photo = load_benchmark_script("bench_multi_photo")


def test_rules_against_each_photo_alone_and_the_rule_written_into_the_run(milk_run: Path, small_milk: Path,
                                                                          tmp_path: Path) -> None:
    from dermtool.prediction.multi_photo import RULES, read_run_rule
    from dermtool.run import RunFolder

    run = tmp_path / "run"
    shutil.copytree(milk_run, run)  # --write-run writes into the run folder; the fixture is read-only
    out = tmp_path / "multi_photo.json"
    assert bench_multi_photo.main(["--model", str(run), "--json", str(out), "--write-run", "--no-progress"]) == 0
    result = json.loads(out.read_text())
    [name] = result["collections"]  # both sources read small_milk: one collection
    assert name == small_milk.name
    rows = RunFolder(run).split_rows
    for split in ("val", "test"):
        entry = result["collections"][name][split]
        lesions = {row.group for row in rows if row.split == split and row.label in RunFolder(run).labels}
        assert entry["lesions"] == len(lesions) > 0 and entry["photos"] == 2 * entry["lesions"]  # MILK's pairs
        assert set(RULES) <= set(entry["rules"]) and set(entry["alone"]) == {"clinical", "dermoscopic"}
        for figures in [*entry["rules"].values(), *entry["alone"].values()]:
            assert figures["n"] == entry["lesions"]
            assert 0.0 <= figures["balanced_accuracy"] <= 1.0
        # max_referral refers a lesion when either photo is referred: at least as sensitive as each alone,
        # at most as specific
        most = entry["rules"]["max_referral"]
        for alone in entry["alone"].values():
            if alone["referral_sensitivity"] is not None:
                assert most["referral_sensitivity"] >= alone["referral_sensitivity"]
            if alone["referral_specificity"] is not None:
                assert most["referral_specificity"] <= alone["referral_specificity"]
    written = read_run_rule(run)
    assert written["rule"] == result["chosen"]["rule"] in RULES
    assert written["chosen_on"]["collection"] == name and written["chosen_on"]["split"] == "val"
    assert written["figures"][name]["test"]["combined"] == result["collections"][name]["test"]["rules"][written["rule"]]
    assert written["referral_classes"] == result["referral"]["classes"]
    assert bench_multi_photo.main(["--model", str(run), "--choose-on", "nowhere", "--no-progress"]) == 2
