"""The lesion check of an exported model, measured through MediaPipe (and LiteRT) on every source's test split,
on an unseen source, on generated non-lesions and on lesion-free skin crops.

    python benchmarks/bench_lesion_check.py --model runs/multisource_cpu/models/int8_ptq.tflite \
        --run runs/multisource_cpu/run --unseen ../shared/data/isic2017 --json lesion_check.json
    python benchmarks/bench_lesion_check.py --model MODEL.tflite --run RUN --save-crops crops/   # look at them

Targets (issue 29): real lesions rejected <= 5 % on each training source's test split and <= 10 % on the
unseen source (ISIC 2017: never used to fit or choose anything), generated non-lesions and lesion-free skin
crops caught >= 95 %.

What is measured, for each client (``mediapipe``: MediaPipe Tasks' ImageClassifier on the original files at
their own size, as an app runs it, reading the ``lesion_check`` head; ``litert``: dermtool's pipeline):

- ``false_rejection[source]``: the share of the run's test-split lesion photos of each source with
  ``P(not_a_lesion) >= threshold``; ``unseen``: the same on every image of ``--unseen``;
- ``generated``: the generated non-lesion images (seed 0; the check was fitted on seed 1 and chosen on seed 2),
  caught per kind and overall;
- ``skin_crops[source]``: one lesion-free crop per test-split photo (:mod:`dermtool.prediction.skin_crops`:
  away from the mask in HAM10000, a corner elsewhere), caught.

``--per-source N`` caps the test photos per source (0: all). The threshold is the model's (dermtool.json).
``--record`` writes the figures into ``RUN/lesion_check.json`` (``figures["test_<mode>"]``, with the command and
date), so that the next ``dermtool export`` carries them in ``dermtool.json`` ``lesion_check.figures`` for
the model card (the exported graph is the same: the figures describe it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _mediapipe_scores(classifier: Any, pixels: list[np.ndarray]) -> np.ndarray:
    return np.array([classifier.not_a_lesion(classifier.classify_raw(classifier.image(image))) for image in pixels])


def _litert_scores(model: Any, pixels: list[np.ndarray]) -> np.ndarray:
    from dermtool.data.preprocess import resize

    spec = model.require_input_spec()
    if not pixels:
        return np.zeros(0)
    return np.asarray(model.predict_with_check(
        np.stack([resize(image, spec.image_size, spec.resize_policy) for image in pixels]))[1], np.float64)


def _originals(paths: list[Path]) -> list[np.ndarray]:
    from dermtool.bench.mediapipe_client import load_original

    return [load_original(path) for path in paths]


def _sample(records: list[Any], count: int, seed: int = 0) -> list[Any]:
    if not count or len(records) <= count:
        return records
    chosen = np.random.default_rng(seed).choice(len(records), count, replace=False)
    return [records[index] for index in sorted(chosen)]


def run(model_path: str, run_path: str, unseen: str | None = None, per_source: int = 0, per_kind: int = 20,
        clients: tuple[str, ...] = ("mediapipe", "litert"), save_crops: str | None = None,
        progress: bool = True) -> dict[str, Any]:
    """Every figure of the module docstring, per client: ``{model, threshold, clients: {client: {...}}, counts}``."""
    from tqdm import tqdm

    from dermtool.bench.mediapipe_client import MediaPipeClassifier
    from dermtool.data.layouts import read_dataset
    from dermtool.data.sources import run_split_records
    from dermtool.prediction.lesion_check import NO_CHECK_MESSAGE, threshold_from_metadata
    from dermtool.prediction.lesion_check_fit import mask_folders
    from dermtool.prediction.non_lesion import generate_non_lesion_images
    from dermtool.prediction.skin_crops import skin_crops
    from dermtool.run import RunFolder
    from dermtool.runtime import TFLiteModel

    model = TFLiteModel(model_path)
    threshold = threshold_from_metadata(model.metadata, model_path)
    if threshold is None or model.lesion_check_output is None:
        raise SystemExit(f"{model_path}: {NO_CHECK_MESSAGE}")
    spec = model.require_input_spec()
    run_folder = RunFolder(run_path)
    test = run_split_records(run_folder).get("test", [])
    by_source: dict[str, list[Any]] = {}
    for record in test:
        by_source.setdefault(record.source or "data", []).append(record)
    by_source = {source: _sample(records, per_source) for source, records in sorted(by_source.items())}
    sets: dict[str, tuple[str, list[np.ndarray]]] = {}  # name -> (group, pixels at their own size)
    for source, records in by_source.items():
        sets[f"lesions:{source}"] = ("lesion", _originals([record.path for record in records]))
        crops = skin_crops(records, spec.image_size * 2, spec.resize_policy, seed=0,
                           mask_folders=mask_folders(run_folder, None), progress=progress)
        sets[f"skin_crops:{source}"] = ("non_lesion", [crop.pixels for crop in crops])
        if save_crops:
            from PIL import Image

            folder = Path(save_crops) / source
            folder.mkdir(parents=True, exist_ok=True)
            for crop in crops[:24]:
                Image.fromarray(crop.pixels).save(folder / f"{crop.image_id}_{crop.method}.png")
    if unseen:
        records = _sample(list(read_dataset(unseen).records), per_source if per_source else 0)
        sets["lesions:unseen"] = ("lesion", _originals([record.path for record in records]))
    generated = (generate_non_lesion_images(count_per_kind=(per_kind + 1) // 2, seed=0)
                 + generate_non_lesion_images(count_per_kind=per_kind // 2, width=240, height=320, seed=100))
    for kind in sorted({item.kind for item in generated}):
        sets[f"generated:{kind}"] = ("non_lesion", [item.pixels for item in generated if item.kind == kind])

    results: dict[str, Any] = {"model": str(model_path), "run": str(run_path), "unseen": unseen,
                               "threshold": threshold, "counts": {name: len(pixels) for name, (_, pixels) in sets.items()},
                               "clients": {}}
    for client in clients:
        shares: dict[str, float] = {}
        if client == "mediapipe":
            with MediaPipeClassifier(model_path, model.require_labels()) as classifier:
                for name, (_, pixels) in tqdm(sets.items(), desc="MediaPipe", disable=None if progress else True):
                    shares[name] = float(np.mean(_mediapipe_scores(classifier, pixels) >= threshold)) if pixels else None
        else:
            for name, (_, pixels) in tqdm(sets.items(), desc="LiteRT", disable=None if progress else True):
                shares[name] = float(np.mean(_litert_scores(model, pixels) >= threshold)) if pixels else None
        generated_names = [name for name in shares if name.startswith("generated:")]
        counts = results["counts"]
        results["clients"][client] = {
            "false_rejection": {name.split(":", 1)[1]: shares[name] for name in shares if name.startswith("lesions:")},
            "skin_crops_caught": {name.split(":", 1)[1]: shares[name] for name in shares
                                  if name.startswith("skin_crops:")},
            "generated_caught": {name.split(":", 1)[1]: shares[name] for name in generated_names},
            "generated_caught_overall": float(sum(shares[name] * counts[name] for name in generated_names)
                                              / max(1, sum(counts[name] for name in generated_names))),
        }
    return results


def record(run_path: str, results: dict[str, Any], command: str) -> str:
    """Write ``results`` into ``RUN/lesion_check.json`` as ``figures["test_<mode>"]``; returns the key."""
    import datetime

    from dermtool.prediction.lesion_check import read_run_check, run_file
    from dermtool.export.metadata import read_metadata
    from dermtool.io_utils import atomic_write_json

    check = read_run_check(run_path)
    if check is None:
        raise SystemExit(f"{run_path} has no lesion_check.json to record the figures in")
    key = f"test_{read_metadata(results['model']).get('mode', 'model')}"
    check.figures[key] = {
        "model": results["model"], "threshold": results["threshold"], "unseen": results["unseen"],
        "counts": results["counts"], "clients": results["clients"], "command": command,
        "date": datetime.date.today().isoformat(),
    }
    atomic_write_json(run_file(run_path), check.to_dict())
    return key


def format_table(results: dict[str, Any]) -> str:
    clients = list(results["clients"])
    lines = [f"threshold P(not_a_lesion) >= {results['threshold']:.3f}",
             f"{'':40}" + "".join(f"{client:>12}" for client in clients)]
    first = results["clients"][clients[0]]
    for block, title in (("false_rejection", "lesions rejected"), ("skin_crops_caught", "skin crops caught"),
                         ("generated_caught", "generated caught")):
        for name in first[block]:
            count = results["counts"].get(f"{'lesions' if block == 'false_rejection' else block.split('_caught')[0]}:{name}")
            label = f"{title}: {name}" + (f" (n={count})" if count is not None else "")
            lines.append(f"{label:40}" + "".join(
                f"{results['clients'][client][block][name] * 100:11.1f}%" for client in clients))
    lines.append(f"{'generated caught: all':40}" + "".join(
        f"{results['clients'][client]['generated_caught_overall'] * 100:11.1f}%" for client in clients))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="A .tflite exported with the lesion check.")
    parser.add_argument("--run", required=True, help="Its run folder (split.csv and sources: the test splits).")
    parser.add_argument("--unseen", help="A labelled folder never used for fitting (e.g. ../shared/data/isic2017).")
    parser.add_argument("--per-source", type=int, default=0, help="At most N test photos per source (0: all).")
    parser.add_argument("--per-kind", type=int, default=20, help="Generated non-lesion images per kind.")
    parser.add_argument("--client", action="append", choices=("mediapipe", "litert"),
                        help="Who runs the model (repeat; default both).")
    parser.add_argument("--save-crops", help="Write up to 24 skin crops per source as PNG into this folder.")
    parser.add_argument("--json", dest="json_out", help="Write the results as JSON here.")
    parser.add_argument("--record", action="store_true",
                        help="Also write the figures into RUN/lesion_check.json (figures.test_<mode>) for the export.")
    arguments = parser.parse_args(argv)
    results = run(arguments.model, arguments.run, arguments.unseen, arguments.per_source, arguments.per_kind,
                  tuple(arguments.client or ("mediapipe", "litert")), arguments.save_crops)
    print(format_table(results))
    if arguments.json_out:
        from dermtool.io_utils import atomic_write_json

        atomic_write_json(arguments.json_out, results)
    if arguments.record:
        import shlex

        command = "python " + " ".join(shlex.quote(part) for part in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
        print(f"recorded as figures.{record(arguments.run, results, command)} in {arguments.run}/lesion_check.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
