"""The model card written beside every exported model: ``<model>.model_card.json`` and ``.model_card.md``.

Sections (:data:`SECTIONS`, the keys of the JSON and the headings of the Markdown, in this order):
can_and_cannot (first: what the model can and cannot do, per source and kind of photo, in plain words with
measured figures; :mod:`dermtool.export.card_capabilities`), model, intended_use, training_data, evaluation, quantization, size, calibration, referral, gate,
limitations, licence. The numbers come from the export itself (validation split, float and exported model
side by side) and from the run's ``metrics.json`` (calibration, referral operating point). A run with a
questionnaire fusion (``dermtool fuse``) adds ``questionnaire_fusion`` (Markdown: "Questionnaire fusion",
after the referral): the questions, what an unknown answer does, what the fusion was fitted on, and the
image-only and fused figures of ``RUN/fusion_report.json``.

Pure Python; no TensorFlow.
"""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from dermtool import DISCLAIMER, __version__
from dermtool.export.card_capabilities import build_capabilities, render_capabilities
from dermtool.export.record import ExportRecord
from dermtool.fusion.questionnaire import QUESTIONS
from dermtool.io_utils import atomic_write_json, atomic_write_text

if TYPE_CHECKING:  # the run folder module loads the model code (TensorFlow); the card only reads its attributes
    from dermtool.run import RunFolder

SECTIONS: tuple[str, ...] = (
    "can_and_cannot",
    "model",
    "intended_use",
    "training_data",
    "evaluation",
    "quantization",
    "size",
    "calibration",
    "referral",
    "gate",
    "limitations",
    "licence",
)

INTENDED_USE = {
    "summary": (
        "Decision support for the referral of skin lesions: given a dermoscopic image, the model gives "
        "calibrated probabilities of seven lesion classes, which dermtool turns into a referral suggestion."
    ),
    "intended_users": "Clinicians (general practitioners, dermatologists) who examine the lesion themselves.",
    "input": "Dermoscopic images (taken through a dermatoscope) of a single skin lesion.",
    "not_intended_for": [
        "Diagnosis: the output is not a diagnosis; a clinician decides, and histopathology confirms.",
        "Screening of the general population or self-examination by lay users.",
        "Clinical (non-dermoscopic) photographs, smartphone close-ups, or images of anything other than a skin lesion.",
        "Any lesion type outside the seven training classes.",
    ],
    "disclaimer": DISCLAIMER,
}

LIMITATIONS = [
    "Training data come from two centres: the ViDIR Group of the Department of Dermatology at the Medical "
    "University of Vienna (Austria) and the skin cancer practice of Cliff Rosendahl in Queensland "
    "(Australia) (HAM10000). Performance on images from other clinics, dermatoscopes and populations is "
    "unknown and usually lower.",
    "Skin type (Fitzpatrick) was not recorded in HAM10000, and the source populations (Austria, Queensland) "
    "are predominantly light-skinned. Performance on darker skin is unknown (published HAM10000-trained "
    "models lose much of their accuracy there).",
    "Only seven classes of mostly pigmented lesions: no inflammatory or infectious skin diseases (e.g. eczema, "
    "psoriasis), no rare tumours (e.g. Merkel cell carcinoma), no nail, mucosal or acral-specific categories. "
    "Such lesions are still assigned to one of the seven classes.",
    "Class imbalance: melanocytic nevi are about two thirds of the data; rare classes (dermatofibroma, "
    "vascular lesions, actinic keratoses) have few examples, so their per-class numbers are uncertain.",
    "Labels: 53 % of the diagnoses (5,340 of 10,015 images) are confirmed by histopathology; the rest by "
    "follow-up examination, expert consensus or in-vivo confocal microscopy.",
    "The validation numbers below are from images of the same centres as training (lesion-grouped split); "
    "they are optimistic for any other setting.",
]

LICENCE = {
    "data": "CC BY-NC-SA 4.0 (HAM10000): attribution, non-commercial use only, share-alike. The model is "
    "derived from these data; keep the same terms.",
    "citation": (
        "Tschandl P., Rosendahl C., Kittler H. The HAM10000 dataset, a large collection of multi-source "
        "dermatoscopic images of common pigmented skin lesions. Sci. Data 5, 180161 (2018). "
        "doi:10.1038/sdata.2018.161"
    ),
    "software": "dermtool (Apache-2.0)",
}


def card_paths(model_path: str | Path) -> tuple[Path, Path]:
    """``(<stem>.model_card.json, <stem>.model_card.md)`` beside ``model_path``."""
    model_path = Path(model_path)
    stem = model_path.name[: -len(model_path.suffix)] if model_path.suffix else model_path.name
    return (model_path.with_name(f"{stem}.model_card.json"), model_path.with_name(f"{stem}.model_card.md"))


def split_counts(split_rows: Sequence[Any], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{split: {label: images}}`` from the run's split rows, every label listed (0 when absent)."""
    counts = Counter((row.split, row.label) for row in split_rows)
    splits = [name for name in ("train", "val", "test") if any(split == name for split, _ in counts)]
    splits += sorted({split for split, _ in counts} - set(splits))
    return {split: {label: int(counts.get((split, label), 0)) for label in labels} for split in splits}


def build_model_card(run: RunFolder, record: ExportRecord) -> dict[str, Any]:
    """The model card of the model an export produced (``record``, :class:`dermtool.export.record.ExportRecord`)
    from the run folder it came from (``run``: its model name and colour constancy, labels, input spec, split,
    ``metrics.json`` and temperature), as a JSON-serialisable dict with the :data:`SECTIONS` keys (plus
    ``created``, and ``questionnaire_fusion`` when the record carries the run's fusion.json). The record's
    ``model_metadata`` (what the model's dermtool.json holds beyond the run: ``lesion_check``, ``multi_photo``)
    feeds the first section."""
    labels, split_rows, run_metrics = run.labels, run.split_rows, run.metrics
    model = run.config.model
    color_constancy = {"method": model.color_constancy, "power": model.color_constancy_power}
    measurement, gate, mode = record.gate, record.gate_dict, record.mode
    float_metrics = measurement.float_metrics if measurement is not None else None
    exported_metrics = measurement.exported_metrics if measurement is not None else None
    exported_referral = measurement.exported_referral if measurement is not None else None
    fusion, fusion_report, bias_correction = record.fusion, record.fusion_report, record.bias_correction
    ece_before = (run_metrics.get("ece_before_calibration") or {}).get("val")
    ece_after = (run_metrics.get("val") or {}).get("ece")
    referral = run_metrics.get("referral")
    card: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "file": record.model_path.name,
            "architecture": model.name,
            "classes": list(labels),
            "input_spec": run.input_spec.to_dict(),
            "color_constancy": color_constancy,
            "run": str(run.path),
            "dermtool_version": __version__,
        },
        "intended_use": INTENDED_USE,
        "training_data": {
            "dataset": "HAM10000 (ISIC 2018 Task 3 training set)",
            "split": "lesion-grouped (all images of one lesion in one split)",
            "images_per_class_and_split": split_counts(split_rows, labels),
        },
        "evaluation": {
            "split": "val",
            "note": "the same validation images for the float model (calibrated) and the exported model (LiteRT)",
            "float": dict(float_metrics) if float_metrics else None,
            "exported": dict(exported_metrics) if exported_metrics else None,
            "run_test_metrics_float": run_metrics.get("test"),
        },
        "quantization": {
            "mode": mode,
            "io": record.io_type,
            "input": dict(record.input_quantization),
            "output": dict(record.output_quantization),
            "representative_images": record.representative_images,
            "representative_source": "training split, stratified by class, prepared with load_image + normalize"
            if record.representative_images else None,
            "quantization_aware_training": record.qat,
            "bias_correction": dict(bias_correction) if bias_correction else None,
            "pruning_target_sparsity": record.prune,
            "fine_tune_target": record.fine_tune_target,
            "sparsity": record.sparsity,
        },
        "size": {"bytes": record.size_bytes, "gzip_bytes": record.gzip_bytes},
        "calibration": {
            "method": "temperature scaling on the validation split, folded into the logits layer",
            "temperature": run.temperature,
            "ece_val_before": ece_before,
            "ece_val_after": ece_after,
            "ece_val_exported": (exported_metrics or {}).get("ece"),
        },
        "referral": {
            "classes": (referral or {}).get("classes"),
            "threshold": (referral or {}).get("threshold"),
            "target_sensitivity": (referral or {}).get("target_sensitivity"),
            "confidence": (referral or {}).get("confidence"),
            "float_val": (referral or {}).get("val"),
            "float_test": (referral or {}).get("test"),
            "exported_val": dict(exported_referral) if exported_referral else None,
            # the melanoma probability alone, its own threshold chosen on validation (metrics.json "melanoma")
            "melanoma": run_metrics.get("melanoma"),
        } if referral else None,
        "gate": dict(gate) if gate else None,
        "limitations": list(LIMITATIONS),
        "licence": LICENCE,
    }
    per_source = run_metrics.get("per_source")
    if per_source:
        _add_sources(card, per_source, split_rows, labels, referral, run_metrics)
    if fusion:
        card["questionnaire_fusion"] = fusion_section(fusion, fusion_report)
    kinds = {source["name"]: source["kind"] for source in card["training_data"].get("sources") or []}
    card["can_and_cannot"] = build_capabilities(
        labels=labels, run_metrics=run_metrics, fusion_report=fusion_report if fusion else None,
        model_metadata=record.model_metadata, gate=gate, mode=mode, kinds=kinds or {"all": "dermoscopic"})
    return {"can_and_cannot": card.pop("can_and_cannot"), **card}


UNKNOWN_ANSWERS = ("Every question may be left unknown: an unknown answer adds nothing, and with every answer "
                   "unknown the image model decides alone.")
FUSION_SUMMARY = ("The health worker's answers to a short questionnaire are combined with the image model's "
                  "probabilities by a small logistic layer applied after the unchanged image model.")
FUSION_NOTE = ("The fusion was fitted on, and its figures measured with, the float model's probabilities; the "
               "exported model's probabilities differ from those by the drift the gate measures.")


def _answers_text(item: Any) -> str:
    """What a question takes, in words: ``a number of years (0-120), read in the bands 0-29, ...``."""
    taken = item.describe().split(": ", 1)[1]
    return f"{taken}, read in the bands {', '.join(item.levels)}" if item.kind == "number" else taken


def _figures_row(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The card's few numbers of one entry of fusion_report.json (image_only, fused or fused_all_unknown)."""
    point = figures.get("referral") or {}
    row = {key: figures.get(key) for key in ("images", "balanced_accuracy", "accuracy", "ece")}
    if point:
        row["referral"] = {key: point.get(key) for key in ("threshold", "sensitivity", "specificity")}
    return row


def fusion_section(fusion: Mapping[str, Any], report: Mapping[str, Any] | None) -> dict[str, Any]:
    """The card's ``questionnaire_fusion``: the questions (with the answers the fusion has weights for), what
    it was fitted on, its referral point and, from ``report`` (fusion_report.json), image-only against fused
    figures per split (val, test) and source."""
    weights = fusion.get("weights") or {}
    questions = [{"name": item.name, "text": item.text, "answers": _answers_text(item),
                  "fitted_answers": [level for level in item.levels if level in weights.get(item.name, {})]}
                 for item in QUESTIONS]
    figures = {
        split: {source: {"images_with_answers": entry.get("images_with_answers"),
                         **{kind: _figures_row(entry[kind]) for kind in ("image_only", "fused", "fused_all_unknown")
                            if entry.get(kind)}}
                for source, entry in sources.items()}
        for split, sources in ((report or {}).get("splits") or {}).items() if split in ("val", "test")
    }
    return {"summary": FUSION_SUMMARY, "unknown_answers": UNKNOWN_ANSWERS, "formula": fusion.get("formula"),
            "questions": questions, "fitted_on": fusion.get("fitted_on"), "referral": fusion.get("referral"),
            "figures": figures or None, "note": FUSION_NOTE}


#: What the card says of each kind of source's images.
SOURCE_KIND_INPUT = {
    "dermoscopic": "dermoscopic images (through a dermatoscope)",
    "smartphone": "smartphone photos (the phone's own camera, no dermatoscope)",
    "clinical": "clinical close-up photographs",
    "other": "other images of skin lesions",
}
SMARTPHONE_LIMITATION = (
    "Smartphone photos come from one public outreach programme in Brazil (PAD-UFES-20): few images (hundreds, "
    "not thousands), mostly Fitzpatrick types 2-3, and per-class test counts of 3-30 images, so the phone "
    "figures below have wide confidence intervals."
)
CLINICAL_LIMITATION = (
    "Clinical close-ups come from MILK10k's five centres (mostly skin-tone classes 3-4 of its own 0-5 scale, few "
    "very dark skin): results on darker skin and on other cameras are less certain than the figures below say."
)
MILK10K_LICENCE = " MILK10k (clinical close-ups and dermoscopy): CC BY-NC 4.0, the MILK study team (ISIC 2025)."


def _add_sources(card: dict[str, Any], per_source: Mapping[str, Any], split_rows: Sequence[Any],
                 labels: Sequence[str], referral: Mapping[str, Any] | None, run_metrics: Mapping[str, Any]) -> None:
    """A multi-source run: what each source is, its images per split, its float test figures, recall per
    skin type and tone, how lesions outside the classes and paired photos fare."""
    per_skin_type = run_metrics.get("per_skin_type")
    sources = []
    for name, entry in per_source.items():
        rows = [row for row in split_rows if getattr(row, "source", "") == name]
        sources.append({"name": name, "kind": entry.get("kind"),
                        "images_per_split": {split: sum(row.split == split for row in rows)
                                             for split in ("train", "val", "test")}})
    kinds = sorted({source["kind"] for source in sources})
    card["training_data"]["dataset"] = "; ".join(f"{source['name']} ({source['kind']})" for source in sources)
    card["training_data"]["split"] = "grouped within each source (all images of one lesion or patient in one split)"
    card["training_data"]["sources"] = sources
    card["intended_use"] = dict(card["intended_use"])
    card["intended_use"]["input"] = "Images of a single skin lesion: " + ", ".join(
        SOURCE_KIND_INPUT.get(kind, kind) for kind in kinds) + "."
    card["intended_use"]["summary"] = (
        f"Decision support for the referral of skin lesions: given an image of a single lesion "
        f"({' or '.join(kinds)}), the model gives calibrated probabilities of {len(labels)} lesion classes "
        f"({', '.join(labels)}), which dermtool turns into a referral suggestion.")
    card["intended_use"]["not_intended_for"] = [
        item for item in card["intended_use"]["not_intended_for"]
        if not item.startswith(("Clinical (non-dermoscopic)", "Any lesion type outside the seven"))
    ] + ["Images of anything other than a skin lesion, and lesion types outside the model's classes."]
    card["limitations"] = [
        item.replace("Only seven classes of mostly pigmented lesions", f"Only {len(labels)} classes of lesions")
            .replace("assigned to one of the seven classes", "assigned to one of the model's classes")
        for item in card["limitations"]]
    card["evaluation"]["per_source_test_float"] = {
        name: ({key: entry["test"].get(key) for key in ("n", "balanced_accuracy", "auc_macro", "ece")}
               | {"recall": {label: values["recall"] for label, values in entry["test"]["per_class"].items()
                             if values["support"]},
                  "support": {label: values["support"] for label, values in entry["test"]["per_class"].items()
                              if values["support"]}}
               if entry.get("test") else None)
        for name, entry in per_source.items()
    }
    if per_skin_type:
        card["evaluation"]["per_skin_type_test_float"] = dict(per_skin_type)
    for key, name in (("per_skin_tone", "per_skin_tone_test_float"), ("out_of_scope", "out_of_scope_float"),
                      ("paired_photos", "paired_photos_test_float")):
        if run_metrics.get(key):
            card["evaluation"][name] = dict(run_metrics[key])
    if card.get("referral") and referral and referral.get("per_source"):
        card["referral"]["per_source"] = dict(referral["per_source"])
    if "smartphone" in kinds:
        card["limitations"] = list(card["limitations"]) + [SMARTPHONE_LIMITATION]
        card["licence"] = dict(card["licence"])
        card["licence"]["data"] += (" Smartphone photos: PAD-UFES-20, CC BY 4.0 (Pacheco A. G. C. et al., "
                                    "Data in Brief 32, 106221, 2020).")
    if "clinical" in kinds:
        card["limitations"] = list(card["limitations"]) + [CLINICAL_LIMITATION]
    if any(name.startswith("milk10k") for name in per_source):
        card["licence"] = dict(card["licence"])
        card["licence"]["data"] += MILK10K_LICENCE


def _sources_markdown(card: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    per_source = card["evaluation"].get("per_source_test_float")
    if not per_source:
        return []
    lines = ["## Per source (float model, test split)", "",
             "| source | kind | images | balanced accuracy | AUC | " + " | ".join(f"{label} recall (n)" for label in labels)
             + " |", "|---|---|---|---|---|" + "---|" * len(labels)]
    kinds = {source["name"]: source["kind"] for source in card["training_data"].get("sources", [])}
    for name, entry in per_source.items():
        if not entry:
            continue
        cells = [f"{_number(entry['recall'][label], 2)} ({entry['support'][label]})" if label in entry["recall"]
                 else "-" for label in labels]
        lines.append(f"| {name} | {kinds.get(name, '')} | {entry['n']} | {_number(entry['balanced_accuracy'])} | "
                     f"{_number(entry['auc_macro'])} | " + " | ".join(cells) + " |")
    lines.append("")
    skin = card["evaluation"].get("per_skin_type_test_float")
    if skin:
        lines += [f"Recall per Fitzpatrick skin type (test; {skin.get('unknown_images', 0)} images without a type; "
                  "\"too few\" below 10 images):", ""]
        for skin_type, entry in skin["types"].items():
            lines.append(f"- type {skin_type} ({entry['n']} images): " + "; ".join(_recall_cells(entry["per_class_recall"])))
        lines.append("")
    tones = card["evaluation"].get("per_skin_tone_test_float")
    if tones:
        lines += [f"Recall per skin-tone class ({tones.get('scale', 'the dataset own scale')}; test; "
                  f"{tones.get('unknown_images', 0)} images without a class; \"too few\" below 10 images). The "
                  f"model has seen the classes {', '.join(tones['tones'])}:", ""]
        for tone, entry in tones["tones"].items():
            lines.append(f"- tone {tone} ({entry['n']} images, {', '.join(entry.get('sources', []))}): "
                         + "; ".join(_recall_cells(entry["per_class_recall"])))
        lines.append("")
    aside = card["evaluation"].get("out_of_scope_float")
    if aside:
        lines += ["Lesions outside the model's classes (never trained: e.g. inflammatory and other benign or "
                  "malignant conditions), as the outcome rule treats them:", ""]
        for name, entry in aside.items():
            lines.append(f"- {name}: {entry['benign']} of {entry['n']} called benign ({entry['called_benign']:.0%}), "
                         f"{entry['refer']} referred, {entry['uncertain']} uncertain")
        lines.append("")
    pairs = card["evaluation"].get("paired_photos_test_float")
    if pairs:
        lines += [f"Two photos of one lesion ({' and '.join(pairs['sources'])}; {pairs['lesions']} test lesions): the "
                  f"same outcome for {pairs['same_outcome']:.0%}, the same top class for {pairs['same_top_class']:.0%}; "
                  f"malignant lesions referred by either photo {_number(pairs['malignant_referred_by_either'])}, by "
                  f"both {_number(pairs['malignant_referred_by_both'])}.", ""]
    return lines


def _recall_cells(table: Mapping[str, Any]) -> list[str]:
    cells = []
    for label, value in table.items():
        if value["recall"] == "too few":
            cells.append(f"{label} too few ({value['n']})")
        else:
            low, high = value["ci95"]
            cells.append(f"{label} {value['recall']:.2f} [{low:.2f}-{high:.2f}] ({value['n']})")
    return cells


def _bias_correction_line(report: Mapping[str, Any] | None) -> str:
    """One line on the bias correction of the model card, from BiasCorrectionReport.to_dict() or None."""
    if not report:
        return "no"
    return (f"yes, {report['corrected_offsets']} biases on {report['images']} representative images "
            f"(mean channel shift of the worst layer {_number(report['shift_before'])} -> "
            f"{_number(report['shift_after'], 4)} standard deviations)")


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _metrics_table(float_metrics: Mapping[str, Any] | None, exported_metrics: Mapping[str, Any] | None,
                   labels: Sequence[str]) -> list[str]:
    if not float_metrics or not exported_metrics:
        return ["Not measured (the run has no validation images)."]
    lines = ["| metric | float | exported |", "|---|---|---|"]
    for key in ("n", "accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece", "nll"):
        lines.append(f"| {key} | {_number(float_metrics.get(key))} | {_number(exported_metrics.get(key))} |")
    lines += ["", "| class | support | recall float | recall exported | precision float | precision exported | F1 float | F1 exported |",
              "|---|---|---|---|---|---|---|---|"]
    for label in labels:
        f, e = float_metrics["per_class"][label], exported_metrics["per_class"][label]
        lines.append(
            f"| {label} | {f['support']} | {_number(f['recall'])} | {_number(e['recall'])} | {_number(f['precision'])} "
            f"| {_number(e['precision'])} | {_number(f['f1'])} | {_number(e['f1'])} |"
        )
    return lines


def render_markdown(card: Mapping[str, Any]) -> str:
    """The model card as Markdown, one ``##`` heading per section."""
    model = card["model"]
    lines = [f"# Model card: {model['file']}", "", f"*{INTENDED_USE['disclaimer']}*", "", f"Created {card['created']}.", ""]
    lines += render_capabilities(card.get("can_and_cannot"))
    lines += _model_section(card) + _intended_use_section(card) + _training_data_section(card)
    lines += _evaluation_section(card) + _sources_markdown(card, model["classes"]) + _quantization_section(card)
    lines += _size_section(card) + _calibration_section(card) + _referral_section(card) + _fusion_section(card)
    lines += _gate_section(card)
    lines += _closing_sections(card)
    return "\n".join(lines)


def _model_section(card: Mapping[str, Any]) -> list[str]:
    """## Model: architecture, classes, input, run."""
    model = card["model"]
    labels, spec = model["classes"], model["input_spec"]
    lines: list[str] = []
    lines += ["## Model", "",
              f"- Architecture: {model['architecture']}, {len(labels)} classes: {', '.join(labels)}",
              f"- Input: {spec['image_size']}x{spec['image_size']} RGB, resize policy '{spec['resize_policy']}', "
              f"normalised as (pixel - {spec['mean']:g}) / {spec['std']:g}",
              *_color_constancy_lines(model.get("color_constancy")),
              f"- Trained run: `{model['run']}`; dermtool {model['dermtool_version']}", ""]
    return lines


def _color_constancy_lines(color_constancy: Mapping[str, Any] | None) -> list[str]:
    """The model's colour-constancy layer, when it has one (it runs inside the model: no app step)."""
    if not color_constancy or color_constancy.get("method", "none") == "none":
        return []
    return [f"- Colour constancy: shades of grey (power {float(color_constancy['power']):g}) is the model's first "
            "layer; it runs inside the model, so apps hand it raw pixels as for any other model"]


def _intended_use_section(card: Mapping[str, Any]) -> list[str]:
    """## Intended use."""
    lines: list[str] = []
    use = card["intended_use"]
    lines += ["## Intended use", "", use["summary"], "", f"- Users: {use['intended_users']}", f"- Input: {use['input']}",
              "- Not intended for:"] + [f"  - {item}" for item in use["not_intended_for"]] + [""]
    return lines


def _training_data_section(card: Mapping[str, Any]) -> list[str]:
    """## Training data: images per class and split."""
    data, labels = card["training_data"], card["model"]["classes"]
    lines: list[str] = []
    counts = data["images_per_class_and_split"]
    splits = list(counts)
    lines += ["## Training data", "", f"{data['dataset']}; {data['split']}.", "",
              "| class | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(str(counts[split][label]) for split in splits) + " |")
    lines.append("| total | " + " | ".join(str(sum(counts[split].values())) for split in splits) + " |")
    lines.append("")
    return lines


def _evaluation_section(card: Mapping[str, Any]) -> list[str]:
    """## Evaluation: the float and the exported model on the validation split."""
    labels = card["model"]["classes"]
    lines: list[str] = []
    evaluation = card["evaluation"]
    lines += ["## Evaluation", "", f"Validation split; {evaluation['note']}.", ""]
    lines += _metrics_table(evaluation["float"], evaluation["exported"], labels) + [""]
    return lines


def _quantization_section(card: Mapping[str, Any]) -> list[str]:
    """## Quantization: mode, tensors, calibration, bias correction, QAT, pruning."""
    quantization = card["quantization"]
    lines: list[str] = []
    lines += ["## Quantization", "",
              f"- Mode: {quantization['mode']}; input/output type: {quantization['io']}",
              f"- Input tensor: {quantization['input']['dtype']}, scale {_number(quantization['input']['scale'], 6)}, "
              f"zero point {quantization['input']['zero_point']}",
              f"- Output tensor: {quantization['output']['dtype']}, scale {_number(quantization['output']['scale'], 6)}, "
              f"zero point {quantization['output']['zero_point']}",
              f"- Representative images: {quantization['representative_images']}"
              + (f" ({quantization['representative_source']})" if quantization["representative_source"] else ""),
              f"- Bias correction of the int8 weight rounding: {_bias_correction_line(quantization.get('bias_correction'))}",
              f"- Quantization-aware training: {'yes' if quantization['quantization_aware_training'] else 'no'}",
              f"- Fine-tuned towards: {quantization.get('fine_tune_target') or 'no fine-tuning'}",
              f"- Pruning: target sparsity {quantization['pruning_target_sparsity']:.0%}, "
              f"measured sparsity of the prunable kernels {quantization['sparsity']:.1%}", ""]
    return lines


def _size_section(card: Mapping[str, Any]) -> list[str]:
    """## Size."""
    lines: list[str] = []
    size = card["size"]
    lines += ["## Size", "", f"- {size['bytes']:,} bytes ({size['bytes'] / 1e6:.2f} MB); "
              f"gzip {size['gzip_bytes']:,} bytes ({size['gzip_bytes'] / 1e6:.2f} MB)", ""]
    return lines


def _calibration_section(card: Mapping[str, Any]) -> list[str]:
    """## Calibration: temperature and ECE."""
    lines: list[str] = []
    calibration = card["calibration"]
    lines += ["## Calibration", "", f"{calibration['method'].capitalize()}.", "",
              f"- Temperature: {_number(calibration['temperature'])}",
              f"- Validation ECE (15 bins): {_number(calibration['ece_val_before'])} before, "
              f"{_number(calibration['ece_val_after'])} after calibration (float); exported model "
              f"{_number(calibration['ece_val_exported'])}", ""]
    return lines


def _referral_section(card: Mapping[str, Any]) -> list[str]:
    """## Referral: the operating point, per split and source, and melanoma alone."""
    lines: list[str] = []
    referral = card["referral"]
    lines += ["## Referral", ""]
    if referral:
        bound = (f" with {referral['confidence']:.0%} confidence (lower confidence bound)"
                 if referral.get("confidence") else "")
        lines.append(f"Refer when the summed probability of {', '.join(referral['classes'] or [])} is at least "
                     f"{_number(referral['threshold'])} (chosen on validation for sensitivity >= "
                     f"{_number(referral['target_sensitivity'], 2)}{bound}).")
        lines.append("")
        for name, key in (("float, val", "float_val"), ("float, test", "float_test"), ("exported, val", "exported_val")):
            point = referral.get(key)
            if point:
                lines.append(f"- {name}: sensitivity {_number(point.get('sensitivity'))}, "
                             f"specificity {_number(point.get('specificity'))}")
        for name, entry in (referral.get("per_source") or {}).items():
            point = entry.get("test")
            if point:
                own = entry.get("own_threshold") or {}
                alone = ""
                if own.get("test") and own["threshold"] == referral.get("threshold"):
                    alone = " (its own threshold is the one shipped)"
                elif own.get("test"):
                    alone = (f" (with its own threshold {_number(own['threshold'])}, which the model does not ship: "
                             f"{_number(own['test'].get('sensitivity'))}, {_number(own['test'].get('specificity'))})")
                lines.append(f"- float, test, {name} only: sensitivity {_number(point.get('sensitivity'))}, "
                             f"specificity {_number(point.get('specificity'))}{alone}")
        melanoma = referral.get("melanoma")
        if melanoma and melanoma.get("threshold") is not None:
            lines += ["", f"Melanoma alone: probability of mel at least {_number(melanoma['threshold'])} (chosen on "
                      f"validation for sensitivity >= {_number(melanoma.get('target_sensitivity'), 2)}), float model:", ""]
            for split in ("val", "test"):
                point = melanoma.get(split)
                if point:
                    lines.append(f"- {split}: sensitivity {_number(point.get('sensitivity'))}, "
                                 f"specificity {_number(point.get('specificity'))}")
    else:
        lines.append("The run recorded no referral operating point.")
    lines.append("")
    return lines


def _fusion_section(card: Mapping[str, Any]) -> list[str]:
    """## Questionnaire fusion (only for a model that carries one)."""
    fusion = card.get("questionnaire_fusion")
    if not fusion:
        return []
    lines = ["## Questionnaire fusion", "", f"{fusion['summary']} {fusion['unknown_answers']}", "",
             f"`{fusion['formula']}`", "", "| question | asked as | answers | answers with weights |",
             "|---|---|---|---|"]
    for item in fusion["questions"]:
        lines.append(f"| {item['name']} | {item['text']} | {item['answers']} | "
                     f"{', '.join(item['fitted_answers']) or 'none (not in the training data)'} |")
    lines += [""] + _fusion_fitting_lines(fusion) + [""]
    if fusion.get("figures"):
        lines += _fusion_figures_table(fusion["figures"]) + [""]
    lines += [fusion["note"], ""]
    return lines


def _fusion_fitting_lines(fusion: Mapping[str, Any]) -> list[str]:
    """What the fusion was fitted on, and its referral rule."""
    fitted = fusion.get("fitted_on") or {}
    lines = [f"- Fitted on {fitted.get('train_images', 'n/a')} training images "
             f"({fitted.get('train_images_with_answers', 'n/a')} with answers) of "
             f"{', '.join(fitted.get('sources') or []) or 'the run'}; L2 penalty {_number(fitted.get('l2'), 4)}; "
             f"calibrated on validation (temperature {_number(fitted.get('validation_temperature'))})"]
    referral = fusion.get("referral")
    if referral:
        lines.append(f"- With answers, refer when the summed probability of {', '.join(referral.get('classes') or [])} "
                     f"is at least {_number(referral.get('threshold'))} (chosen on validation for sensitivity >= "
                     f"{_number(referral.get('target_sensitivity'), 2)} on each source)")
    return lines


def _fusion_figures_table(figures: Mapping[str, Any]) -> list[str]:
    """Image only against fused, per split and source (float model)."""
    def referral(row: Mapping[str, Any]) -> str:
        point = row.get("referral")
        return f"{_number(point.get('sensitivity'))}/{_number(point.get('specificity'))}" if point else "-"

    lines = ["| split | source | images (with answers) | balanced accuracy: image only, fused | accuracy | ECE | "
             "referral sensitivity/specificity | balanced accuracy, every answer unknown |",
             "|---|---|---|---|---|---|---|---|"]
    for split, sources in figures.items():
        for source, entry in sources.items():
            image, fused = entry.get("image_only") or {}, entry.get("fused") or {}
            unknown = entry.get("fused_all_unknown") or {}
            lines.append(
                f"| {split} | {source} | {image.get('images', 'n/a')} ({entry.get('images_with_answers', 'n/a')}) | "
                f"{_number(image.get('balanced_accuracy'))}, {_number(fused.get('balanced_accuracy'))} | "
                f"{_number(image.get('accuracy'))}, {_number(fused.get('accuracy'))} | "
                f"{_number(image.get('ece'))}, {_number(fused.get('ece'))} | {referral(image)}, {referral(fused)} | "
                f"{_number(unknown.get('balanced_accuracy'))} |")
    return lines


def _gate_section(card: Mapping[str, Any]) -> list[str]:
    """## Gate: the accuracy gate's numbers."""
    lines: list[str] = []
    gate = card["gate"]
    lines += ["## Gate", ""]
    if gate:
        verdict = "passed" if gate["passed"] else "failed"
        lines += [f"Accuracy gate {verdict}{'' if gate['enforced'] else ' (not enforced: --no-gate)'} on "
                  f"{gate['images']} validation images.", "",
                  f"- Balanced accuracy: float {_number(gate['float_balanced_accuracy'], 4)}, exported "
                  f"{_number(gate['exported_balanced_accuracy'], 4)}, drop {gate['balanced_accuracy_drop_points']:.2f} "
                  f"points (limit {gate['max_balanced_accuracy_drop']:g})",
                  f"- Top-1 agreement with the float model: {_number(gate['top1_agreement'], 4)} "
                  f"(minimum {gate['min_agreement']:g})"]
    else:
        lines.append("Not measured (the run has no validation images).")
    lines.append("")
    return lines


def _closing_sections(card: Mapping[str, Any]) -> list[str]:
    """## Limitations and ## Licence."""
    lines: list[str] = []
    lines += ["## Limitations", ""] + [f"- {item}" for item in card["limitations"]] + [""]
    licence = card["licence"]
    lines += ["## Licence", "", f"- Data: {licence['data']}", f"- Citation: {licence['citation']}",
              f"- Software: {licence['software']}", ""]
    return lines


def write_model_card(card: Mapping[str, Any], model_path: str | Path) -> tuple[Path, Path]:
    """Write ``card`` as JSON and Markdown beside ``model_path`` (atomically); returns both paths."""
    json_path, markdown_path = card_paths(model_path)
    atomic_write_json(json_path, card)
    atomic_write_text(markdown_path, render_markdown(card))
    return json_path, markdown_path


__all__ = ["SECTIONS", "LIMITATIONS", "LICENCE", "INTENDED_USE", "card_paths", "split_counts",
           "build_model_card", "fusion_section", "render_markdown", "write_model_card"]
