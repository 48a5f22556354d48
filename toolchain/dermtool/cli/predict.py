"""``dermtool predict``: calibrated probabilities and a referral outcome per image.

Heavy imports (numpy work, TensorFlow or LiteRT) happen inside the command function, so
``dermtool predict --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from dermtool.cli.answers import questions_help
from dermtool.cli.output import STDOUT, JsonOutput, json_option

EPILOG = """\b
Examples:
  dermtool predict lesion.jpg --model runs/lite0
  dermtool predict photos/ --model lite0_int8.tflite --json results.json
  dermtool predict photos/ --model lite0_int8.tflite --json - | jq '.[].outcome'
  dermtool predict 'photos/*.jpg' --model runs/lite0 --top-k 5 --uncertainty-threshold 0.6
  dermtool predict lesion.jpg --model runs/multisource_cpu --answer bleed=yes --answer age=64
  dermtool predict photos/ --model multisource_int8.tflite --answers answers.csv --json -
  dermtool predict close_up.jpg dermoscopy.jpg --lesion --model multisource_int8.tflite
  dermtool predict photos/ --lesions lesions.csv --model multisource_int8.tflite --json -
\b
Outcomes (the first that applies wins):
  not_a_lesion  the model's lesion check finds no skin lesion in the photo: its second head gives
                P(not_a_lesion) at or above its threshold (both in the model: the .tflite's
                'lesion_check' output, or RUN/lesion_check.json from `dermtool lesion-check RUN`);
                no class probabilities are shown. A model without the check says so.
  refer         the summed probability of the malignant classes (mel, bcc, akiec) is at or above the
                referral threshold chosen on validation data for a sensitivity of at least 90 %
                (95 % lower confidence bound)
  uncertain     the top probability is below --uncertainty-threshold (default 50 %)
  benign        none of the above (not a diagnosis)
\b
Ask, then look: with --answer or --answers, a model with a questionnaire fusion (`dermtool fuse RUN`, then
`dermtool export`) combines the health worker's answers with the image. The outcome, probabilities and
referral threshold are then the fused ones; the report adds how much the answers moved the malignant
probability and what the image alone says (--json: the result's "fusion" block). A question left out is
unknown and adds nothing. --answers FILE: a JSON object {image: {question: answer}} or a CSV with an image
(or image_id) column and one column per question; an image is matched by its path, then its file name,
then its stem; an image the file does not name gets no answers.
\b
Several photos of one lesion: with --lesion every IMAGE is a photo of one lesion; with --lesions FILE (a CSV
with an image or image_id column and a lesion or lesion_id column, or a JSON object {lesion: [image, ...]};
images matched as for --answers; an image the file does not name is a lesion of its own) the photos are
grouped. Each photo is scored alone; photos the lesion check rejects (not_a_lesion) or that cannot be read are
left out and listed; the rest are combined by the model's multi-photo rule (dermtool.json "multi_photo",
measured on MILK10k's clinical + dermoscopic pairs: benchmarks/bench_multi_photo.py) into one answer per
lesion. --json then gives one object per lesion: the contract keys for the lesion ("image" is the lesion's
name) plus lesion, photos (one contract object per photo), combined, left_out [{image, reason, detail}] and
multi_photo {rule, description, photos_combined}. Answers (--answer, or --answers per image: a lesion's photos
must not disagree) are fused once, with the combined image probabilities.
\b
IMAGE may be files, folders (every image inside, recursively) or quoted glob patterns. An unreadable
image is reported in place ({image, error} with --json) and the command exits 1 after all others; a folder
with no images is an error (exit 2). --answers FILE: an image with two rows, a question in two columns or a
JSON key given twice is an error naming the image and the question.
--json with no PATH (the last option, or followed by another option) means '-', as in earlier versions;
a PATH with an image suffix is refused (it would be one of the images). Exit status: 0 ok, 1 some image
unreadable, 2 usage error, 3 a model with non-finite outputs.
Images are read, never stored; EXIF data is ignored. Only regular files within the decoding budget are
read (64 MB, 40 megapixels, 256 MB of decoded memory; raise with DERMTOOL_MAX_IMAGE_MB,
DERMTOOL_MAX_IMAGE_MEGAPIXELS, DERMTOOL_MAX_DECODE_MB). A model whose outputs are NaN or infinite gives no
outcome: the command stops with an error.
"""


def _has_glob(text: str) -> bool:
    return any(character in text for character in "*?[")


def collect_images(arguments: tuple[str, ...]) -> list[str]:
    """Files, folders (recursively, image suffixes only) and glob patterns -> a list of paths, in order.

    A name that matches nothing is kept as given, so that it is reported as unreadable in its place; a folder
    with no images is a :class:`dermtool.DermtoolError` (exit 2).
    """
    import glob

    from dermtool.data.images import IMAGE_SUFFIXES

    paths: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:  # a mistyped or empty folder is said, not answered with []
                from dermtool import DermtoolError

                raise DermtoolError(f"{argument}: the folder holds no images (no file ending in "
                                    f"{', '.join(sorted(IMAGE_SUFFIXES))}); check the folder name")
            paths.extend(str(p) for p in found)
        elif path.exists() or not _has_glob(argument):
            paths.append(argument)
        else:
            matches = sorted(m for m in glob.glob(argument, recursive=True) if Path(m).is_file())
            paths.extend(matches if matches else [argument])
    return paths


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def referral_summary(predictor: Any) -> list[str]:
    """Header lines: the decision rule and the operating point measured on validation/test data."""
    from dermtool.prediction.predictor import class_name

    thresholds = predictor.thresholds
    source = {
        "metrics.json": "chosen on the validation split",
        "metadata": "chosen on the validation split (model metadata)",
        "argument": "set on the command line",
        "default": "DEFAULT, not chosen for this model",
    }[thresholds.referral_source]
    names = " + ".join(label for label in thresholds.malignant_classes if label in predictor.labels)
    lines = [f"Referral: {names} probability >= {_percent(thresholds.referral)} ({source})"]
    referral = predictor.referral or {}
    if referral.get("target_sensitivity") is not None and thresholds.referral_source != "argument":
        measured = []
        for split in ("val", "test"):
            values = referral.get(split) or {}
            if values.get("sensitivity") is not None:
                measured.append(
                    f"{split}: sensitivity {_percent(values['sensitivity'])}, "
                    f"specificity {_percent(values.get('specificity'))}"
                )
        target = f"target sensitivity {_percent(referral['target_sensitivity'])}"
        lines.append(f"  malignant vs benign at this threshold ({target}): " + "; ".join(measured or ["not measured"]))
    melanoma = getattr(predictor, "melanoma", None) or {}
    if melanoma.get("threshold") is not None:
        test = melanoma.get("test") or {}
        val = melanoma.get("val") or {}
        chosen = test or val
        split = "test" if test else "val"
        lines.append(
            f"  {class_name('mel')} alone (its probability >= {_percent(melanoma['threshold'])}): "
            f"{split} sensitivity {_percent(chosen.get('sensitivity'))}, "
            f"specificity {_percent(chosen.get('specificity'))}"
        )
    lines.append(f"Uncertain below {_percent(thresholds.uncertainty)} top probability")
    if predictor.lesion_check_threshold is not None:
        lines.append(f"Lesion check: not a lesion at P(not_a_lesion) >= {predictor.lesion_check_threshold:.2f}")
    else:
        lines.append("Lesion check: NONE (this model has no lesion check, or it is off: photos that show no skin "
                     "lesion are not rejected)")
    return lines


def format_result(result: dict[str, Any], predictor: Any) -> list[str]:
    """The text block of one image."""
    if "error" in result:
        return [result["image"], f"  Error: {result['error']}"]
    if result.get("fusion") and result["outcome"] != "not_a_lesion":
        lines = [result["image"], *fusion_lines(result, predictor)]
    else:
        lines = [result["image"], "  " + predictor.describe(result)]
    if result["outcome"] == "not_a_lesion":  # class probabilities of a non-lesion are meaningless: not shown
        check = result.get("lesion_check") or {}
        lines.append(f"  P(not_a_lesion) {check.get('not_a_lesion', 0):.2f} (threshold {check.get('threshold', 0):.2f})")
        return lines
    for rank, entry in enumerate(result["top_k"], start=1):
        lines.append(f"  {rank}. {entry['name']} ({entry['label']})".ljust(58) + f"{entry['probability'] * 100:6.1f} %")
    if result.get("lesion_check") is not None:
        lines.append(f"  lesion check: P(not_a_lesion) {result['lesion_check']['not_a_lesion']:.2f}")
    return lines


@click.command("predict", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("--model", "model_path", required=True, metavar="RUN_or_MODEL",
              help="A run folder (from `dermtool train`) or a .tflite (from `dermtool export`).")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Classes listed per image.")
@json_option("the contract's list, one object per image,", is_flag=False, flag_value=STDOUT)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Interpreter threads (.tflite).")
@click.option("--uncertainty-threshold", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              metavar="P", help="Outcome 'uncertain' when the top probability is below P.")
@click.option("--referral-threshold", type=click.FloatRange(0.0, 1.0), default=None, metavar="P",
              help="Override the model's referral threshold on the malignant probability.")
@click.option("--no-lesion-check", "--no-ood", "no_lesion_check", is_flag=True,
              help="Switch the model's lesion check off (no photo is rejected as not a lesion); --no-ood is the "
                   "same switch under its old name.")
@click.option("--answer", "answer_arguments", multiple=True, metavar="QUESTION=ANSWER",
              help="The health worker's answer to one question, for every image; repeat for several "
                   f"(--answer bleed=yes --answer age=64). The questions: {questions_help()}. Leave a question "
                   "out when its answer is unknown. Needs a model with a questionnaire fusion (dermtool fuse).")
@click.option("--answers", "answers_file", default=None, metavar="FILE",
              help="Answers per image: a JSON object {image: {question: answer}} or a CSV with an image (or "
                   "image_id) column and one column per question.")
@click.option("--lesion", "one_lesion", is_flag=True,
              help="Every IMAGE is a photo of one lesion: one answer from all of them (see below).")
@click.option("--lesions", "lesions_file", default=None, metavar="FILE",
              help="Which IMAGEs show one lesion: a CSV with image and lesion columns, or a JSON object "
                   "{lesion: [image, ...]}; one answer per lesion.")
def predict(
    images: tuple[str, ...],
    model_path: str,
    top_k: int,
    json_out: str | None,
    threads: int,
    uncertainty_threshold: float,
    referral_threshold: float | None,
    no_lesion_check: bool,
    answer_arguments: tuple[str, ...],
    answers_file: str | None,
    one_lesion: bool = False,
    lesions_file: str | None = None,
) -> None:
    """Predict calibrated class probabilities and an outcome (refer, uncertain, not a lesion, benign)
    for each IMAGE with a trained run folder or an exported .tflite, optionally combined with the
    health worker's answers to a short questionnaire (--answer, --answers).
    """
    import warnings

    from tqdm import tqdm

    from dermtool import DISCLAIMER, DermtoolError
    from dermtool.data.images import IMAGE_SUFFIXES
    from dermtool.prediction.predictor import get_predictor

    if json_out not in (None, STDOUT) and Path(json_out).suffix.lower() in IMAGE_SUFFIXES:
        raise DermtoolError(f"--json {json_out} looks like an image, not a JSON file: put --json after the images, "
                            "or give a path such as results.json")
    output = JsonOutput(json_out)
    paths = collect_images(images)
    answer_source = AnswerSource(answer_arguments, answers_file)  # read before the model: a typo fails fast
    groups = None
    if one_lesion or lesions_file:
        from dermtool.cli.lesions import group_images

        groups = group_images(paths, one_lesion, lesions_file)  # read before the model too
    with output.capture():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            predictor = get_predictor(model_path, threads=threads).with_options(
                uncertainty_threshold=uncertainty_threshold,
                referral_threshold=referral_threshold,
                lesion_check=not no_lesion_check,
            )
        for message in dict.fromkeys(str(warning.message) for warning in caught):
            output.note(f"Warning: {message}")
        if answer_source.given:
            answer_source.check(predictor, paths, output)

        if groups is not None:  # several photos of one lesion: one answer per lesion
            from dermtool.cli.lesions import finish_lesions

            finish_lesions(output, predictor, groups, answer_source, top_k, model_path)  # exits 1 on unreadable photos
            return
        results: list[dict[str, Any]] = []
        chunk = 32
        with tqdm(total=len(paths), unit="image", file=sys.stderr, disable=True if len(paths) < 10 else None) as bar:
            for start in range(0, len(paths), chunk):
                part = paths[start : start + chunk]
                results.extend(predictor.predict(part, top_k=top_k, answers=answer_source.for_images(part)))
                bar.update(len(part))

        _report(output, results, predictor, model_path, DISCLAIMER)  # left out with --json -
        output.write(results)
    failures = sum(1 for result in results if "error" in result)
    if failures:
        output.note(f"{failures} of {len(results)} image(s) could not be read.")
        sys.exit(1)


class AnswerSource:
    """The answers of ``--answer`` (the same for every image) or of ``--answers FILE`` (one set per image)."""

    def __init__(self, answer_arguments: tuple[str, ...], answers_file: str | None) -> None:
        from dermtool import DermtoolError
        from dermtool.cli.answers import AnswerMatcher, read_answer_file
        from dermtool.fusion.questionnaire import parse_answer_arguments

        if answer_arguments and answers_file:
            raise DermtoolError("give --answer (the same answers for every image) or --answers FILE (answers per "
                                "image), not both")
        self.answers = parse_answer_arguments(answer_arguments) if answer_arguments else None
        self.matcher = AnswerMatcher(read_answer_file(answers_file), answers_file) if answers_file else None

    @property
    def given(self) -> bool:
        return self.answers is not None or self.matcher is not None

    def for_images(self, paths: list[str]) -> Any:
        """What :meth:`Predictor.predict` takes as ``answers`` for these images (None without answers)."""
        return self.matcher.answers_for_all(paths) if self.matcher is not None else self.answers

    def check(self, predictor: Any, paths: list[str], output: JsonOutput) -> None:
        """Refuse answers for a model without a fusion; note how many images an answers file names."""
        predictor.require_fusion()
        if self.matcher is not None:
            named = sum(1 for answers in self.matcher.answers_for_all(paths) if answers)
            output.note(f"Answers for {named} of {len(paths)} image(s) in {self.matcher.source}; the others are "
                        "predicted from the image alone")


#: What the image alone would have said, in the "Image alone:" line of a result fused with answers.
IMAGE_ALONE_WORDS = {"refer": "refer", "uncertain": "uncertain", "benign": "no referral signal"}


def fusion_lines(result: dict[str, Any], predictor: Any) -> list[str]:
    """The lines of a result fused with answers: the fused outcome, ``Answers: <summary>`` and, when the
    answers were applied, what the image alone says."""
    import numpy as np

    from dermtool.prediction.predictor import class_name, decide_outcome, describe_outcome

    fusion = result["fusion"]
    applied = fusion.get("applied") and predictor.fusion_thresholds is not None
    thresholds = predictor.fusion_thresholds if applied else predictor.thresholds
    effects = fusion.get("malignant_probability") or {}
    lines = ["  " + describe_outcome(result, thresholds, predictor.labels),
             f"  Answers: {effects.get('summary', 'none')}"]
    if fusion.get("applied"):
        image = fusion["image_only"]
        probabilities = np.array([image["probabilities"][label] for label in predictor.labels])
        outcome = decide_outcome(probabilities, predictor.labels, predictor.thresholds, False)
        lines.append(f"  Image alone: {IMAGE_ALONE_WORDS[outcome]} (malignant probability "
                     f"{_percent(effects.get('image_only'))}, refers at {_percent(predictor.thresholds.referral)}); "
                     f"most likely {class_name(image['label'])} ({image['label']}) {image['probability'] * 100:.1f} %")
    return lines


def _report(output: JsonOutput, results: list[dict[str, Any]], predictor: Any, model_path: str, disclaimer: str) -> None:
    """The text report: the model, its decision rule, one block per image, the disclaimer."""
    kind = "run folder, float Keras" if predictor.kind == "run" else "TFLite"
    output.report(f"Model: {model_path} ({kind}; classes {', '.join(predictor.labels)})")
    for line in referral_summary(predictor):
        output.report(line)
    if any(result.get("fusion") for result in results) and predictor.fusion_thresholds is not None:
        fused = predictor.fusion_thresholds
        source = {"fusion.json": "chosen on the validation split (fusion.json)",
                  "metadata": "chosen on the validation split (model metadata)",
                  "argument": "set on the command line"}.get(fused.referral_source, fused.referral_source)
        output.report(f"With answers: refer when the fused malignant probability >= {_percent(fused.referral)} "
                      f"({source})")
    for result in results:
        output.report("")
        for line in format_result(result, predictor):
            output.report(line)
    output.report("")
    output.report(disclaimer)
