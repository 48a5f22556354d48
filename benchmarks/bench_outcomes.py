"""What a health worker would be told: the outcome (benign / refer / uncertain / not_a_lesion) of every image.

    python benchmarks/bench_outcomes.py --model runs/multisource_cpu --data ../shared/data/pad_ufes_20 \
        --split test --json outcomes_pad.json
    python benchmarks/bench_outcomes.py --model model.tflite --data DATA --split test --manifest RUN/split.csv
    python benchmarks/bench_outcomes.py --model runs/leave_out --data ../shared/data/ham10000 --raw-labels \
        --only-labels df,vasc          # leave-classes-out: a run trained without df and vasc
    python benchmarks/bench_outcomes.py --model runs/multisource_cpu --data ../shared/data/milk10k \
        --source milk10k_clinical --split test --out-of-scope   # + MILK10k's inf, ben_oth, mal_oth lesions

Two safety figures come out of it, for real lesion images of one folder:

- ``lesions_rejected``: the share of real lesions the lesion check rejects (target: at most 5 % on
  every source; a check fitted on one kind of image rejecting another kind is how it fails);
- ``out_of_class_benign``: among images whose label the model does not know (a class left out of training,
  standing in for the diseases a model has never seen), the share called ``benign``: a confident all-clear
  for a disease it cannot recognise (target: at most 5 %). The leave-classes-out protocol trains without some
  classes (a source's ``label_map`` maps them to ``""``) and runs this on their images. With
  ``--out-of-scope``, a source's ``out_of_scope`` labels (MILK10k's inflammatory, other benign and other
  malignant lesions, never trained) are added to the split's images as such out-of-class images.

The model's own decision rule is used (referral threshold, uncertainty threshold, lesion check), exactly as
``dermtool predict`` applies it. A multi-source model's label map for DATA applies (as in ``dermtool bench``).
Output: a flat JSON object (and a table on stdout) with the outcome shares per true label.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

OUTCOME_ORDER = ("benign", "refer", "uncertain", "not_a_lesion")


def outcome_table(records: list[Any], outcomes: list[str], known_labels: set[str]) -> dict[str, Any]:
    """Shares of each outcome per true label, the lesion check's false rejections and the out-of-class all-clears."""
    by_label: dict[str, Counter] = {}
    for record, outcome in zip(records, outcomes):
        by_label.setdefault(record.label, Counter())[outcome] += 1
    result: dict[str, Any] = {"n": len(outcomes), "by_label": {}}
    for label, counts in sorted(by_label.items()):
        total = sum(counts.values())
        result["by_label"][label] = {"n": total, "known": label in known_labels,
                                     **{outcome: counts[outcome] / total for outcome in OUTCOME_ORDER}}
    result["lesions_rejected"] = sum(outcome == "not_a_lesion" for outcome in outcomes) / max(1, len(outcomes))
    unknown = [outcome for record, outcome in zip(records, outcomes) if record.label not in known_labels]
    result["out_of_class_images"] = len(unknown)
    result["out_of_class_benign"] = (sum(outcome == "benign" for outcome in unknown) / len(unknown)) if unknown else None
    known = [outcome for record, outcome in zip(records, outcomes) if record.label in known_labels]
    result["in_class_benign"] = (sum(outcome == "benign" for outcome in known) / len(known)) if known else None
    return result


def run(model: str, data: str, split: str | None, manifest: str | None, reference_run: str | None,
        batch_size: int = 32, raw_labels: bool = False, only_labels: set[str] | None = None,
        source: str | None = None, out_of_scope: bool = False) -> dict[str, Any]:
    from dermtool import DermtoolError
    from dermtool.bench.runner import _model_sources, select_records
    from dermtool.data.layouts import read_dataset
    from dermtool.data.sources import out_of_scope_records, source_of_folder
    from dermtool.prediction.predictor import Predictor

    predictor = Predictor(model)
    reference = reference_run or (model if Path(model).is_dir() else None)
    if split is not None and manifest is None and reference is None:
        raise SystemExit("--split needs --manifest SPLIT.csv or --reference-run RUN (a .tflite has no split)")

    class _Model:  # select_records reads the sources from an exported model's metadata
        metadata = getattr(predictor._shared.backend, "metadata", {}) or {}

    sources = [] if raw_labels else _model_sources(_Model, reference)
    records, description = select_records(data, None, split, manifest, reference, sources=sources,
                                          source_name=source)
    if out_of_scope:
        dataset = read_dataset(data)
        chosen = source_of_folder(sources, dataset, (), source) if source else None
        if chosen is None or not chosen.out_of_scope:
            raise DermtoolError("--out-of-scope needs --source NAME, a source of the model with out_of_scope labels")
        aside = out_of_scope_records(dataset, chosen)
        records += aside
        description["out_of_scope_images"] = len(aside)
    if only_labels:
        records = [record for record in records if record.label in only_labels]
    outcomes: list[str] = []
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        outcomes += [item.get("outcome", "error") for item in predictor.predict([str(r.path) for r in batch])]
    result = outcome_table(records, outcomes, set(predictor.labels))
    result.update({"model": str(model), "data": description,
                   "thresholds": {"referral": predictor.thresholds.referral,
                                  "uncertainty": predictor.thresholds.uncertainty,
                                  "malignant_classes": list(predictor.thresholds.malignant_classes)}})
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'label':<8}{'n':>6}  " + "".join(f"{outcome:>14}" for outcome in OUTCOME_ORDER)]
    for label, entry in result["by_label"].items():
        mark = "" if entry["known"] else " *"
        lines.append(f"{label + mark:<8}{entry['n']:>6}  " + "".join(f"{entry[o]:>14.3f}" for o in OUTCOME_ORDER))
    lines.append(f"lesions rejected as not a lesion: {result['lesions_rejected']:.3f}")
    if result["out_of_class_benign"] is not None:
        lines.append(f"* labels the model does not know: {result['out_of_class_images']} images, called benign: "
                     f"{result['out_of_class_benign']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder or .tflite")
    parser.add_argument("--data", required=True, help="labelled image folder (one source)")
    parser.add_argument("--split", default=None, help="only this split of the run's (or --manifest's) split.csv")
    parser.add_argument("--manifest", default=None, help="split file for --split (default: the run's)")
    parser.add_argument("--reference-run", default=None, help="for a .tflite: the run folder it came from")
    parser.add_argument("--raw-labels", action="store_true",
                        help="the folder's own labels, without the model's label map (leave-classes-out: the "
                             "classes a map left out are then the out-of-class images)")
    parser.add_argument("--only-labels", default=None, help="comma-separated labels: only images of these")
    parser.add_argument("--source", default=None, help="which source of a multi-source model DATA is (needed where "
                                                       "several read one folder, e.g. milk10k_clinical)")
    parser.add_argument("--out-of-scope", action="store_true",
                        help="add the source's out_of_scope images (never trained) as out-of-class images")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    from dermtool import DermtoolError

    try:
        only = {label.strip().lower() for label in args.only_labels.split(",")} if args.only_labels else None
        result = run(args.model, args.data, args.split, args.manifest, args.reference_run,
                     raw_labels=args.raw_labels, only_labels=only, source=args.source,
                     out_of_scope=args.out_of_scope)
    except DermtoolError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.json_path:
        from dermtool.io_utils import atomic_write_json

        atomic_write_json(args.json_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
