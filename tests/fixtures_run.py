"""Session fixtures for trained runs (owned by the training module's tests).

``tiny_run``: a real run folder, trained once per test session with ``configs/smoke.toml`` on the
``small_ham`` images (84 real HAM10000 images; 64 px EfficientNet-Lite0 from its ImageNet weights, one
head epoch and one fine-tuning epoch of the last blocks). It holds everything ``dermtool train`` writes
(model.keras, labels.txt, split.csv, config.toml, history.csv, metrics.json, input_spec.json, plots,
checkpoints/, logs/). Its scores are meaningless; its files are real.

``two_source_run``: the same smoke training on two sources, ``small_ham`` ("ham", dermoscopic) and
``small_pad`` ("pad", smartphone photos with the questionnaire's answers, PAD-UFES-20's labels mapped by
:data:`PAD_MAP`), with the camera augmentations on.

``milk_run``: the same smoke training on one folder read as two sources, ``small_milk``'s dermoscopic
photos ("milk_dermoscopic") and its clinical close-ups ("milk_clinical", ``where = {image_type = ...}``),
MILK10k's inf, ben_oth and mal_oth kept out of scope.

Treat them as read-only: a test that changes a run folder must copy it first (``shutil.copytree``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SMOKE_CONFIG = REPO_ROOT / "configs" / "smoke.toml"
#: PAD-UFES-20's labels renamed onto HAM10000's in ``two_source_run``.
PAD_MAP = {"ack": "akiec", "sek": "bkl", "nev": "nv"}


def smoke_config(data_dir: Path, overrides: list[str] | tuple[str, ...] = ()):
    """configs/smoke.toml pointed at ``data_dir``, with optional ``section.key=value`` overrides."""
    from dermtool.config import load_config

    config = load_config(SMOKE_CONFIG, list(overrides))
    config.data.data_dir = str(data_dir)
    return config


@pytest.fixture(scope="session")
def tiny_run(small_ham: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a finished run folder trained on ``small_ham`` with configs/smoke.toml (read-only)."""
    from dermtool.train.trainer import train

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    train(smoke_config(small_ham), out, progress=False)
    return out


@pytest.fixture(scope="session")
def two_source_run(small_ham: Path, small_pad: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a finished two-source run folder (ham and pad, see the module docstring; read-only)."""
    from dermtool.config import SourceConfig
    from dermtool.train.trainer import train

    config = smoke_config(small_ham, ["augment.blur=1.0", "augment.jpeg_quality=50", "augment.downscale=0.5",
                                      "augment.zoom_out=0.2"])
    config.data.sources = [
        SourceConfig(name="ham", data_dir=str(small_ham), share=0.6),
        SourceConfig(name="pad", data_dir=str(small_pad), kind="smartphone", share=0.4, label_map=PAD_MAP),
    ]
    out = tmp_path_factory.mktemp("two_sources") / "run"
    train(config, out, progress=False)
    return out


#: MILK10k's labels outside the model's classes, kept aside as the out-of-scope check in ``milk_run``.
MILK_OUT_OF_SCOPE = ["inf", "ben_oth", "mal_oth"]


@pytest.fixture(scope="session")
def milk_run(small_milk: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a finished run on small_milk's two kinds of photo as two sources (read-only)."""
    from dermtool.config import SourceConfig
    from dermtool.train.trainer import train

    config = smoke_config(small_milk, ["train.images_per_epoch=48"])
    config.data.sources = [
        SourceConfig(name=f"milk_{kind}", data_dir=str(small_milk), kind=kind, share=0.5,
                     where={"image_type": kind}, out_of_scope=list(MILK_OUT_OF_SCOPE))
        for kind in ("dermoscopic", "clinical")]
    out = tmp_path_factory.mktemp("milk_sources") / "run"
    train(config, out, progress=False)
    return out


def model_card_of_run(run_path: Path) -> dict:
    """The model card ``dermtool export`` would write for a run's int8 model, built straight from the run
    folder (an export record with made-up sizes and quantisation, and no gate measured)."""
    from dermtool.export.model_card import build_model_card
    from dermtool.export.record import ExportRecord
    from dermtool.run import RunFolder

    run = RunFolder(run_path)
    quantization = {"dtype": "uint8", "scale": 0.01, "zero_point": 0}
    record = ExportRecord(model_path=run_path / "m.tflite", mode="int8", io_type="uint8",
                          input_quantization=quantization, output_quantization=quantization,
                          representative_images=8, size_bytes=1, gzip_bytes=1)
    return build_model_card(run, record)
