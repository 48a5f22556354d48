"""The model card's first section: what the model can and cannot do, per source and kind of photo, in plain
words with measured figures.

Every number comes from a file the export already reads: the run's ``metrics.json`` (float model, each
source's lesion-grouped test split: balanced accuracy, melanoma recall, referral sensitivity and specificity
at the shipped threshold, skin tones, lesions outside the classes), ``RUN/fusion_report.json`` (the same
referral with the health worker's answers), this export's gate (the exported model against the float model
on the validation split) and the model's ``dermtool.json`` (``lesion_check``: what the lesion check rejects
and catches; ``multi_photo``: several photos of one lesion against each alone). A figure that is missing is
not invented: the sentence that needs it is left out, or says "not measured".

Pure Python; no TensorFlow.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from dermtool import DISCLAIMER
from dermtool.prediction.multi_photo import MultiPhotoRule

#: What a kind of photo is called in the card's sentences.
KIND_WORDS = {
    "dermoscopic": "Dermoscopic images (through a dermatoscope)",
    "clinical": "Clinical close-ups (an ordinary camera)",
    "smartphone": "Phone photos (a smartphone's own camera)",
}
#: The issue's target share of non-lesions a lesion check catches; below it the card says what it misses.
CAUGHT_TARGET = 0.95
#: Below this many test images of a class, its recall is called "too few to rely on".
FEW_IMAGES = 10
EMBEDDING_GUIDE = "mobile_demo/EMBEDDING.md"
STATUS = ("dermtool is a decision-support research tool, not a medical device. The model suggests whether a "
          "lesion should be seen by a dermatologist; it does not diagnose, and a clinician decides.")
FIGURES_NOTE = ("Figures: the float model on each source's lesion-grouped test split (the run's metrics.json), "
                "with answers from fusion_report.json, the exported model against the float model on the "
                "validation split (this export's gate), the lesion check and the several-photo rule from the "
                "model's dermtool.json. Test images come from the same centres as training: on other clinics, "
                "cameras and populations expect lower figures.")


def _percent(value: float | None) -> str:
    """``42%``; one decimal below 10 % (``0.2%``), so that a small rate is not shown as 0."""
    if value is None:
        return "n/a"
    return f"{value:.1%}" if 0 < value < 0.1 else f"{value:.0%}"


def _number(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _source_rows(run_metrics: Mapping[str, Any], fusion_report: Mapping[str, Any] | None,
                 kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per source (or one pooled row for a single-source run): test figures, image only and with
    the answers."""
    referral = run_metrics.get("referral") or {}
    fused_test = ((fusion_report or {}).get("splits") or {}).get("test") or {}
    per_source = run_metrics.get("per_source") or {}
    if per_source:
        entries = [(name, entry.get("kind") or kinds.get(name) or "other", entry.get("test"),
                    ((referral.get("per_source") or {}).get(name) or {}).get("test"))
                   for name, entry in per_source.items()]
    else:
        entries = [("all", next(iter(kinds.values()), "dermoscopic"), run_metrics.get("test"), referral.get("test"))]
    rows = []
    for name, kind, test, point in entries:
        if not test:
            continue
        melanoma = (test.get("per_class") or {}).get("mel") or {}
        fused = ((fused_test.get(name) or {}).get("fused") or {}).get("referral") if name != "all" else None
        rows.append({
            "source": name, "kind": kind, "test_images": test.get("n"),
            "balanced_accuracy": test.get("balanced_accuracy"),
            "melanoma_recall": melanoma.get("recall") if melanoma.get("support") else None,
            "melanomas": melanoma.get("support", 0),
            "referral_sensitivity": (point or {}).get("sensitivity"),
            "referral_specificity": (point or {}).get("specificity"),
            "with_answers": ({"sensitivity": fused.get("sensitivity"), "specificity": fused.get("specificity"),
                              "images_with_answers": (fused_test.get(name) or {}).get("images_with_answers")}
                             if fused else None),
        })
    return rows


def _source_sentence(row: Mapping[str, Any], classes: Sequence[str]) -> str:
    kind = KIND_WORDS.get(row["kind"], row["kind"].capitalize())
    if row["referral_sensitivity"] is None:
        text = f"{kind}, {row['source']} ({row['test_images']} test images): its referral was not measured"
    else:
        text = (f"{kind}, {row['source']} ({row['test_images']} test images): it refers "
                f"{_percent(row['referral_sensitivity'])} of the malignant lesions ({', '.join(classes)}) and clears "
                f"{_percent(row['referral_specificity'])} of the benign ones")
    answers = row.get("with_answers")
    if answers:
        text += (f" ({_percent(answers['sensitivity'])} and {_percent(answers['specificity'])} with the health "
                 "worker's answers)")
    if row["melanomas"]:
        few = " (too few to rely on)" if row["melanomas"] < FEW_IMAGES else ""
        found = round((row["melanoma_recall"] or 0.0) * row["melanomas"])
        text += f"; it names {found} of the {row['melanomas']} melanomas as melanoma{few}"
    return text + f"; balanced accuracy over the classes {_number(row['balanced_accuracy'])}."


def _multi_photo_sentence(multi_photo: Mapping[str, Any] | None) -> str | None:
    """Several photos of one lesion against each alone, on the collection the rule was chosen on (test)."""
    if not multi_photo:
        return None

    rule = MultiPhotoRule.from_dict(multi_photo)
    chosen = (multi_photo.get("chosen_on") or {}) if isinstance(multi_photo.get("chosen_on"), Mapping) else {}
    figures = ((multi_photo.get("figures") or {}).get(chosen.get("collection")) or {}).get("test")
    text = f"Give one answer from several photos of one lesion ({rule.describe()})"
    if not figures:
        return text + ": not measured on this model (the default rule)."
    combined = figures["combined"]
    alone = "; ".join(f"{kind} alone {_number(values['balanced_accuracy'])}, "
                      f"{_percent(values['referral_sensitivity'])}/{_percent(values['referral_specificity'])}"
                      for kind, values in figures["alone"].items())
    return (f"{text}: on {chosen.get('collection')}'s {figures['lesions']} test lesions, balanced accuracy "
            f"{_number(combined['balanced_accuracy'])} and referral sensitivity/specificity "
            f"{_percent(combined['referral_sensitivity'])}/{_percent(combined['referral_specificity'])} from the "
            f"photos together ({alone}).")


def _lesion_check_measurement(figures: Mapping[str, Any], mode: str) -> tuple[Mapping[str, Any], str, str | None]:
    """``(figures, where they were measured, the unseen folder's name)``: the test splits through MediaPipe
    (``figures["test_int8"]`` for an int8 export, ``test_float`` otherwise; ``bench_lesion_check --record``)
    when recorded, else the fit's own validation figures."""
    test = figures.get("test_int8" if mode == "int8" else "test_float") or next(
        (value for key, value in figures.items() if key.startswith("test_") and isinstance(value, Mapping)), None)
    clients = (test or {}).get("clients") if isinstance(test, Mapping) else None
    if isinstance(clients, Mapping) and clients:
        client = "mediapipe" if "mediapipe" in clients else next(iter(clients))
        unseen = test.get("unseen")
        where = ("on the test splits, run through MediaPipe as a phone runs it" if client == "mediapipe"
                 else f"on the test splits ({client})")
        return clients[client], where, (str(unseen).rstrip("/").rsplit("/", 1)[-1] if unseen else None)
    return (figures.get("refitted_validation") or figures), "on validation images", None


def _lesion_check_sentences(lesion_check: Mapping[str, Any] | None, mode: str) -> tuple[str | None, str | None]:
    """(what it can: the check's figures, what it cannot: no check, or what it misses) from dermtool.json's
    ``lesion_check``."""
    if not lesion_check:
        return None, ("Tell a photo without a skin lesion from a lesion photo: this model has no lesion check, so "
                      "any image (an invoice, a wall, healthy skin) gets a class and maybe a referral.")
    figures = lesion_check.get("figures") or {}
    measured, where, unseen_name = _lesion_check_measurement(figures, mode)
    parts = []
    rejected = measured.get("false_rejection")
    if isinstance(rejected, Mapping) and rejected:
        parts.append("turns away " + ", ".join(
            f"{_percent(value)} of {unseen_name}'s real lesion photos (clinics it never saw)"
            if name == "unseen" and unseen_name else f"{_percent(value)} of {name}'s real lesion photos"
            for name, value in rejected.items()))
    crops = measured.get("skin_crops_caught")
    if isinstance(crops, Mapping) and crops:
        parts.append("catches " + ", ".join(f"{_percent(value)} of {name}'s lesion-free skin crops"
                                            for name, value in crops.items()))
    generated = measured.get("generated_caught_overall", measured.get("generated_caught"))
    if isinstance(generated, (int, float)) and not isinstance(generated, bool):
        parts.append(f"catches {_percent(generated)} of generated non-lesion images (blank, text, patterns ...)")
    unseen = figures.get("leave_one_source_out_validation")
    if isinstance(unseen, Mapping) and unseen:
        worst = max(unseen, key=lambda name: (unseen[name] or {}).get("false_rejection") or 0.0)
        parts.append(f"fitted without a source, it turned away at most "
                     f"{_percent((unseen[worst] or {}).get('false_rejection'))} of that source's validation photos "
                     f"({worst})")
    threshold = lesion_check.get("threshold")
    text = (f"Turn away photos that show no skin lesion (the model's second output "
            f"'{lesion_check.get('head_name', 'lesion_check')}', rejecting at P(not_a_lesion) >= {_number(threshold)})")
    cannot = None
    if isinstance(crops, Mapping) and crops and min(crops.values()) < CAUGHT_TARGET:
        low = min(crops, key=crops.get)
        cannot = (f"Always tell skin without a lesion from a lesion: its lesion check catches only "
                  f"{_percent(crops[low])} of {low}'s lesion-free skin crops "
                  f"({'test split' if 'test' in where else 'validation'}).")
    return (text + (f": {where}, it " + "; ".join(parts) + "." if parts else ".")), cannot


def build_capabilities(*, labels: Sequence[str], run_metrics: Mapping[str, Any],
                       fusion_report: Mapping[str, Any] | None, model_metadata: Mapping[str, Any] | None,
                       gate: Mapping[str, Any] | None, mode: str, kinds: Mapping[str, str]) -> dict[str, Any]:
    """The card's ``can_and_cannot`` section (see the module docstring). ``kinds``: ``{source: kind}``."""
    metadata = model_metadata or {}
    referral = run_metrics.get("referral") or {}
    classes = list(referral.get("classes") or [])
    rows = _source_rows(run_metrics, fusion_report, kinds)
    can: list[str] = []
    test = referral.get("test") or {}
    if test.get("sensitivity") is not None:
        can.append(f"Suggest a referral: over every test image it refers {_percent(test['sensitivity'])} of the "
                   f"malignant lesions ({', '.join(classes)}) and clears {_percent(test.get('specificity'))} of the "
                   f"benign ones (one threshold, {_number(referral.get('threshold'), 3)}, for every kind of photo).")
    can += [_source_sentence(row, classes) for row in rows]
    several = _multi_photo_sentence(metadata.get("multi_photo"))
    if several:
        can.append(several)
    check_can, check_cannot = _lesion_check_sentences(metadata.get("lesion_check"), mode)
    if check_can:
        can.append(check_can)
    if gate:
        can.append(f"Run on a phone as this {mode} file: it gives the float model's top class for "
                   f"{_percent(gate.get('top1_agreement'))} of validation images (balanced accuracy "
                   f"{_number(gate.get('float_balanced_accuracy'), 3)} float, "
                   f"{_number(gate.get('exported_balanced_accuracy'), 3)} exported).")
    cannot = ["Diagnose: its output is a suggestion for a clinician, not a diagnosis; it is not for screening the "
              "general population or for self-examination."]
    cannot.append(f"Recognise lesions outside its {len(labels)} classes ({', '.join(labels)}): inflammatory and "
                  "infectious diseases, rare tumours and others still get one of these classes.")
    aside = run_metrics.get("out_of_scope") or {}
    for name, entry in aside.items():
        cannot.append(f"Be trusted to refer what it was never taught: of {name}'s {entry['n']} lesions outside the "
                      f"classes it called {entry['benign']} ({_percent(entry.get('called_benign'))}) benign.")
    if check_cannot:
        cannot.append(check_cannot)
    weakest = min((row for row in rows if row["referral_specificity"] is not None),
                  key=lambda row: row["referral_specificity"], default=None)
    if weakest is not None and len(rows) > 1:
        cannot.append(f"Spare many benign lesions a referral on {weakest['source']} ({weakest['kind']}): it clears only "
                      f"{_percent(weakest['referral_specificity'])} of them, because one threshold must keep "
                      "sensitivity on every kind of photo.")
    tones = ((run_metrics.get("per_skin_tone") or {}).get("tones")) or {}
    dark = sum(int(tones[tone]["n"]) for tone in ("0", "1") if tone in tones)
    if tones:
        cannot.append(f"Be relied on for very dark skin: only {dark} test images of skin-tone classes 0-1 (of "
                      "MILK10k's 0-5 scale), too few to measure.")
    if any(row["kind"] == "smartphone" for row in rows):
        phone = next(row for row in rows if row["kind"] == "smartphone")
        cannot.append(f"Promise its phone-photo figures elsewhere: they come from one Brazilian programme "
                      f"({phone['source']}, {phone['test_images']} test images).")
    cannot.append("Promise these figures on clinics, cameras and populations it was not trained on: unknown, "
                  "usually lower.")
    return {"status": STATUS, "can": can, "cannot": cannot, "per_source": rows,
            "lesion_check": dict(metadata["lesion_check"]) if metadata.get("lesion_check") else None,
            "multi_photo": ({key: value for key, value in metadata["multi_photo"].items()}
                            if metadata.get("multi_photo") else None),
            "embedding_guide": EMBEDDING_GUIDE, "figures_note": FIGURES_NOTE, "disclaimer": DISCLAIMER}


def render_capabilities(section: Mapping[str, Any] | None) -> list[str]:
    """Markdown: ``## What this model can and cannot do``, first in the card."""
    if not section:
        return []
    lines = ["## What this model can and cannot do", "", f"**{section['status']}**", "", "It can:", ""]
    lines += [f"- {item}" for item in section["can"]] + ["", "It cannot:", ""]
    lines += [f"- {item}" for item in section["cannot"]] + [""]
    rows = section.get("per_source") or []
    if rows:
        lines += ["| kind of photo | source | test images | balanced accuracy | melanoma recall (melanomas) | "
                  "referral sensitivity / specificity | with answers |", "|---|---|---|---|---|---|---|"]
        for row in rows:
            answers = row.get("with_answers")
            lines.append(
                f"| {row['kind']} | {row['source']} | {row['test_images']} | {_number(row['balanced_accuracy'])} | "
                f"{_number(row['melanoma_recall'])} ({row['melanomas']}) | {_number(row['referral_sensitivity'])} / "
                f"{_number(row['referral_specificity'])} | "
                + (f"{_number(answers['sensitivity'])} / {_number(answers['specificity'])}" if answers else "-")
                + " |")
        lines.append("")
    lines += [section["figures_note"], "",
              f"Building it into an Android or iOS app (MediaPipe Tasks; the questionnaire, the lesion check and "
              f"several photos of one lesion): [`{section['embedding_guide']}`]({section['embedding_guide']}) in "
              "the dermtool repository.", ""]
    return lines


__all__ = ["EMBEDDING_GUIDE", "KIND_WORDS", "STATUS", "build_capabilities", "render_capabilities"]
