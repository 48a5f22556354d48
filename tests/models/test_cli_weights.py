"""`dermtool weights import`: converts into the cache, then reports cache hits."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dermtool.cli.main import cli


def test_weights_import_then_cache_hit(tmp_path: Path, private_weights_cache: Path) -> None:
    runner = CliRunner()
    cache = tmp_path / "cli-cache"
    first = runner.invoke(cli, ["weights", "import", "efficientnet-lite0", "--cache", str(cache)])
    assert first.exit_code == 0, first.output
    path = next(cache.glob("efficientnet-lite0-*.npz"))
    assert first.output.startswith(f"efficientnet-lite0: {path} (18.8 MB, converted in ")
    second = runner.invoke(cli, ["weights", "import", "all", "--cache", str(cache)])
    assert second.exit_code == 0, second.output
    lines = second.output.splitlines()
    assert lines[0] == f"efficientnet-lite0: {path} (18.8 MB, cache hit)"
    assert [line.split(":")[0] for line in lines] == ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
    assert "converted" in lines[1] and "converted" in lines[2]
    assert not private_weights_cache.exists()  # --cache overrides $DERMTOOL_CACHE


def test_weights_import_uses_dermtool_cache_and_rejects_unknown_names(private_weights_cache: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["weights", "import", "efficientnet-lite2"])
    assert result.exit_code == 0, result.output
    assert str(private_weights_cache) in result.output
    result = runner.invoke(cli, ["weights", "import", "resnet50"])
    assert result.exit_code == 2 and "efficientnet-lite0" in result.output
    help_text = runner.invoke(cli, ["weights", "import", "--help"]).output
    assert "dermtool weights import all" in help_text
