"""``dermtool data check`` and ``dermtool data split``: output, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dermtool.cli.main import cli
from dermtool.data.split import read_split_csv


def run(*arguments: str):
    return CliRunner().invoke(cli, list(arguments))


def assert_one_line_error(result, exit_code: int, fragment: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr


def test_help_texts_teach_with_examples() -> None:
    for arguments in (["data", "--help"], ["data", "check", "--help"], ["data", "split", "--help"]):
        result = run(*arguments)
        assert result.exit_code == 0 and "Examples:" in result.output
    assert "--strict" in run("data", "check", "--help").output
    assert "--overwrite" in run("data", "split", "--help").output


def test_check_clean_folder(small_ham: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run("data", "check", str(small_ham), "--json", str(out), "--strict")
    assert result.exit_code == 0, result.output
    assert "84 listed, 84 usable, 0 error(s)" in result.stdout
    assert "Result: OK" in result.stdout
    report = json.loads(out.read_text())
    assert report["n_valid"] == 84 and report["errors"] == [] and report["layout"] == "csv"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_check_messy_folder_reports_and_strict_exit(messy_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run("data", "check", str(messy_folder), "--json", str(out))
    assert result.exit_code == 0, result.output  # not strict: problems reported, exit 0
    text = result.stdout
    for name, reason in (("truncated.jpg", "truncated"), ("text.jpg", "not_an_image"), ("zero.jpg", "empty"),
                         ("huge_header.png", "too_large")):
        assert any(name in line and f": {reason}:" in line for line in text.splitlines()), (name, text)
    assert "Errors (4)" in text
    assert "cmyk: 1, e.g." in text and "exif_rotated: 1, e.g." in text and "tiny:" in text
    assert "copy_of_first" in text and "different lesions" in text
    assert "Missing (1" in text and "ISIC_9999999" in text
    assert "Unlisted (1" in text
    assert "Result: PROBLEMS" in text
    assert len(json.loads(out.read_text())["errors"]) == 4

    strict = run("data", "check", str(messy_folder), "--json", "-", "--strict")
    assert strict.exit_code == 1  # --strict: partial failure, after the JSON is written
    report = json.loads(strict.stdout)  # stdout holds the JSON alone
    assert set(report) == set(json.loads(out.read_text())) and len(report["errors"]) == 4
    assert "Result: PROBLEMS" not in strict.output  # with --json -, no text report

    strict = run("data", "check", str(messy_folder), "--strict", "--min-per-class", "13")
    assert strict.exit_code == 1
    assert "Rare labels (fewer than 13 usable images): bcc 12" in strict.stdout


def test_check_user_errors_exit_2(tmp_path: Path, small_ham: Path) -> None:
    assert_one_line_error(run("data", "check", str(tmp_path)), 2, "no labelled images found")
    assert_one_line_error(run("data", "check", str(tmp_path / "absent")), 2, "data folder not found")
    assert_one_line_error(run("data", "check", str(small_ham), "--split", str(tmp_path / "nope.csv")), 2,
                          "split file not found")
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,label,group,split\na,nv,g,holdout\n")
    assert_one_line_error(run("data", "check", str(small_ham), "--split", str(bad)), 2, "line 2")


def test_split_writes_prints_and_refuses_to_overwrite(small_ham: Path, tmp_path: Path) -> None:
    out = tmp_path / "split.csv"
    result = run("data", "split", str(small_ham), "--out", str(out), "--seed", "0")
    assert result.exit_code == 0, result.output
    assert "groups shared between splits: 0" in result.stdout
    assert "84 (" in result.stdout and "akiec" in result.stdout and f"Split written to {out}" in result.stdout
    rows = read_split_csv(out)
    assert len(rows) == 84 and {row.split for row in rows} == {"train", "val", "test"}
    before = out.read_bytes()

    again = run("data", "split", str(small_ham), "--out", str(out), "--seed", "1")
    assert_one_line_error(again, 2, "--overwrite")
    assert out.read_bytes() == before  # nothing lost

    replaced = run("data", "split", str(small_ham), "--out", str(out), "--seed", "1", "--overwrite")
    assert replaced.exit_code == 0 and out.read_bytes() != before

    same = tmp_path / "same.csv"
    assert run("data", "split", str(small_ham), "--out", str(same), "--seed", "0").exit_code == 0
    assert same.read_bytes() == before  # deterministic for a seed


def test_split_user_errors_exit_2(small_ham: Path, tmp_path: Path) -> None:
    out = tmp_path / "split.csv"
    assert_one_line_error(run("data", "split", str(small_ham), "--out", str(out), "--val", "0.5", "--test", "0.45"),
                          2, "less than 10 %")
    assert_one_line_error(run("data", "split", str(small_ham), "--out", str(out), "--test", "1.5"), 2, "--test")
    assert_one_line_error(run("data", "split", str(tmp_path / "absent"), "--out", str(out)), 2, "not found")
    assert not out.exists()
    missing_out = run("data", "split", str(small_ham))
    assert missing_out.exit_code == 2 and "--out" in missing_out.stderr


def _two_source_config(tmp_path: Path, small_ham: Path, small_pad: Path) -> Path:
    config = tmp_path / "two.toml"
    config.write_text(
        f'[data]\nsplit_seed = 2\n\n[[data.sources]]\nname = "ham"\ndata_dir = "{small_ham}"\n\n'
        f'[[data.sources]]\nname = "pad"\ndata_dir = "{small_pad}"\nkind = "smartphone"\n'
        'label_map = { ack = "akiec", sek = "bkl", nev = "nv" }\n')
    return config


def test_split_with_a_multi_source_config_splits_each_source(tmp_path: Path, small_ham: Path, small_pad: Path) -> None:
    config = _two_source_config(tmp_path, small_ham, small_pad)
    result = run("data", "split", "--config", str(config), "--out", str(tmp_path / "split.csv"))
    assert result.exit_code == 0, result.output
    assert "Source ham (dermoscopic)" in result.output and "Source pad (smartphone)" in result.output
    rows = read_split_csv(tmp_path / "split.csv")
    assert {row.source for row in rows} == {"ham", "pad"}
    assert {row.label for row in rows if row.source == "pad"} == {"akiec", "bcc", "bkl", "mel", "nv", "scc"}
    again = run("data", "split", "--config", str(config), "--out", str(tmp_path / "again.csv"))
    assert again.exit_code == 0 and read_split_csv(tmp_path / "again.csv") == rows  # seeded by the config


def test_check_with_a_multi_source_config_reports_each_source(tmp_path: Path, small_ham: Path, small_pad: Path) -> None:
    config = _two_source_config(tmp_path, small_ham, small_pad)
    result = run("data", "check", "--config", str(config), "--json", str(tmp_path / "check.json"))
    assert result.exit_code == 0, result.output
    assert "== Source pad (smartphone) ==" in result.output and "ack -> akiec" in result.output
    assert set(json.loads((tmp_path / "check.json").read_text())) == {"ham", "pad"}


def test_two_sources_of_one_folder_are_checked_once_and_split_by_lesion(tmp_path: Path, small_milk: Path) -> None:
    config = tmp_path / "milk.toml"
    config.write_text("".join(
        f'[[data.sources]]\nname = "milk_{kind}"\ndata_dir = "{small_milk}"\nkind = "{kind}"\n'
        f'where = {{ image_type = "{kind}" }}\nout_of_scope = ["inf", "ben_oth", "mal_oth"]\n\n'
        for kind in ("dermoscopic", "clinical")))
    result = run("data", "check", "--config", str(config), "--json", str(tmp_path / "check.json"))
    assert result.exit_code == 0, result.output
    assert "the folder of source milk_dermoscopic (checked above)" in result.output
    assert "Out of scope (not trained, checked at the end of training): inf, ben_oth, mal_oth" in result.output
    reports = json.loads((tmp_path / "check.json").read_text())
    assert reports["milk_clinical"] == reports["milk_dermoscopic"]
    split = run("data", "split", "--config", str(config), "--out", str(tmp_path / "split.csv"))
    assert split.exit_code == 0, split.output
    rows = read_split_csv(tmp_path / "split.csv")
    assert {row.source for row in rows} == {"milk_clinical", "milk_dermoscopic"}
    assert all(len({row.split for row in rows if row.group == group}) == 1 for group in {row.group for row in rows})
    checked = run("data", "check", str(small_milk), "--split", str(tmp_path / "split.csv"), "--strict")
    assert checked.exit_code == 0 and "groups shared between splits: 0" in checked.output


def test_data_and_config_together_or_neither_is_one_line(tmp_path: Path, small_ham: Path) -> None:
    for arguments in (("data", "split", "--out", str(tmp_path / "s.csv")),
                      ("data", "check", str(small_ham), "--config", "x.toml")):
        result = run(*arguments)
        assert result.exit_code != 0 and "give DATA or --config" in result.output
