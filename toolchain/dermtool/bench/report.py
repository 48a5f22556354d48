"""Present a bench results dict (from :func:`dermtool.bench.runner.run_bench`): terminal table, Markdown, plots.

Every per-class listing puts melanoma (``mel``) first: its recall (sensitivity) is the number a reader of
a skin-lesion classifier must see before any other. The remaining classes follow in the model's order.

- :func:`format_table` -> text for the terminal: accuracy (model, reference, delta), drift, per-class
  precision/recall/F1 with the recall delta against the reference, the questionnaire fusion's figures
  beside the image model's (when the results have ``fusion``), latency per thread count, size, memory.
- :func:`to_markdown` -> the same as Markdown tables.
- :func:`write_plots` -> ``confusion_matrix.png``, ``reliability.png`` and ``latency_histogram.png``
  (matplotlib with the Agg backend, imported only here, when called).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from dermtool.bench.runner import MELANOMA
from dermtool.io_utils import atomic_path
from dermtool.train import plots

#: The summary metrics, in display order: (key, label, higher is better).
SUMMARY_METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("macro_f1", "macro F1"),
    ("auc_macro", "AUC (macro, one-vs-rest)"),
    ("ece", "ECE (15 bins)"),
    ("nll", "NLL"),
)

DRIFT_METRICS: tuple[tuple[str, str], ...] = (
    ("top1_agreement", "top-1 agreement"),
    ("mean_abs_prob_diff", "mean |p - p_ref|"),
    ("max_abs_prob_diff", "max |p - p_ref|"),
    ("mean_kl", "mean KL(ref || model)"),
)

LATENCY_COLUMNS: tuple[str, ...] = ("init", "first", "mean", "std", "p50", "p90", "p99", "runs")


def class_order(labels: Sequence[str]) -> list[str]:
    """``labels`` with melanoma first, the rest in their given order."""
    labels = list(labels)
    return ([MELANOMA] if MELANOMA in labels else []) + [label for label in labels if label != MELANOMA]


def _labels(results: Mapping[str, Any]) -> list[str]:
    matrix = results.get("confusion_matrix") or {}
    return list(matrix.get("labels") or results.get("per_class", {}).keys())


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:  # NaN (e.g. AUC with one class present)
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _signed(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "n/a"
    return f"{value:+.{digits}f}"


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def _rows_to_text(rows: Sequence[Sequence[str]], right_align_from: int = 1) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(widths[column]) if column < right_align_from else cell.rjust(widths[column])
            for column, cell in enumerate(row)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


# ------------------------------------------------------------------------------------------------ tables
def summary_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """Rows ``[metric, model, reference, delta]`` (reference columns '-' without a reference)."""
    reference = results.get("reference")
    drift = results.get("drift") or {}
    rows = [["metric", "model", "reference", "delta"] if reference else ["metric", "model"]]
    for key, title in SUMMARY_METRICS:
        row = [title, _number(results.get(key))]
        if reference:
            delta = drift.get(f"delta_{key}")
            if delta is None and isinstance(results.get(key), float) and isinstance(reference.get(key), float):
                delta = results[key] - reference[key]
            row += [_number(reference.get(key)), _signed(delta)]
        rows.append(row)
    return rows


def per_class_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """Rows ``[class, support, precision, recall, F1 (, reference recall, recall delta)]``, melanoma first."""
    per_class = results.get("per_class") or {}
    reference = results.get("reference")
    deltas = (results.get("drift") or {}).get("per_class_recall_delta") or {}
    header = ["class", "support", "precision", "recall", "F1"]
    if reference:
        header += ["ref recall", "recall delta"]
    rows = [header]
    for label in class_order(_labels(results)):
        values = per_class.get(label, {})
        title = f"{label} (melanoma)" if label == MELANOMA else label
        row = [title, _number(values.get("support")), _number(values.get("precision")),
               _number(values.get("recall")), _number(values.get("f1"))]
        if reference:
            row += [_number((reference.get("per_class") or {}).get(label, {}).get("recall")), _signed(deltas.get(label))]
        rows.append(row)
    return rows


def latency_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """Rows ``[threads, init, first, mean, std, p50, p90, p99, runs]`` in milliseconds."""
    rows = [["threads", *LATENCY_COLUMNS]]
    for threads, entry in (results.get("latency_ms") or {}).items():
        rows.append([str(threads)] + [
            str(entry.get(column)) if column == "runs" else _number(entry.get(column), 3) for column in LATENCY_COLUMNS
        ])
    return rows


def drift_rows(results: Mapping[str, Any], key: str = "drift", title: str = "drift against the reference") -> list[list[str]]:
    drift = results.get(key) or {}
    return [[title, "value"]] + [[name, _number(drift.get(metric), 4)] for metric, name in DRIFT_METRICS]


PIPELINE_TITLE = "MediaPipe against dermtool's pipeline"

#: The three columns of the questionnaire-fusion table: (key of results["fusion"], heading).
FUSION_COLUMNS: tuple[tuple[str, str], ...] = (("image_only", "image only"), ("fused", "fused"),
                                               ("fused_all_unknown", "every answer unknown"))


def fusion_title(results: Mapping[str, Any]) -> str:
    """The heading of the fusion table: how many images had answers, and where they came from."""
    block = results["fusion"]
    return (f"Questionnaire fusion ({block['images_with_answers']} of {block['images']} images with answers, "
            f"from {block['answers_from']}; referral at the image model's and the fusion's threshold)")


def fusion_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """Rows ``[metric, image only, fused, every answer unknown]``: balanced accuracy, accuracy, ECE, referral
    sensitivity and specificity, recall per class (melanoma first)."""
    block = results["fusion"]
    parts = [block[key] for key, _ in FUSION_COLUMNS]
    rows = [["metric"] + [title for _, title in FUSION_COLUMNS]]
    for key, title in (("balanced_accuracy", "balanced accuracy"), ("accuracy", "accuracy"), ("ece", "ECE (15 bins)")):
        rows.append([title] + [_number(part.get(key)) for part in parts])
    for key in ("sensitivity", "specificity"):
        rows.append([f"referral {key}"] + [_number((part.get("referral") or {}).get(key)) for part in parts])
    for label in class_order(list(block["fused"]["recall"])):
        rows.append([f"{label} recall"] + [_number(part["recall"].get(label)) for part in parts])
    return rows


def client_lines(results: Mapping[str, Any]) -> list[str]:
    """What ran the model, when it was MediaPipe (``--client mediapipe`` or ``both``); empty for LiteRT alone."""
    part = results if results.get("client") == "mediapipe" else results.get("mediapipe")
    if not part:
        return []
    sizes = part.get("input_images") or {}
    upscale = results.get("upscale") or 1.0
    where = f"{sizes.get('median_width', '?')}x{sizes.get('median_height', '?')} px (median)"
    if upscale != 1.0:
        where += f", copies up-scaled x{upscale:g} with LANCZOS"
    drift = part.get("pipeline_drift") or {}
    entry = (part.get("latency_ms") or {}).get("mediapipe") or {}
    lines = [
        f"Client: MediaPipe Tasks ImageClassifier on the images at their own size, {where}",
        f"  top-1 agreement with dermtool's pipeline {_number(drift.get('top1_agreement'), 4)}, "
        f"balanced accuracy {_signed(drift.get('delta_balanced_accuracy'))} against it, "
        f"mean |p - p_pipeline| {_number(drift.get('mean_abs_prob_diff'), 4)}",
        f"  classify per image: p50 {_number(entry.get('p50'), 2)} ms, p90 {_number(entry.get('p90'), 2)} ms",
    ]
    if part is not results:
        lines.insert(1, f"  balanced accuracy {_number(part.get('balanced_accuracy'))}, melanoma recall "
                        f"{_number((part.get('per_class') or {}).get(MELANOMA, {}).get('recall'))}")
    return lines


def _model_line(results: Mapping[str, Any]) -> str:
    model = results.get("model") or {}
    mode = f", {model['mode']}" if model.get("mode") else ""
    input_info = model.get("input") or {}
    return (
        f"{model.get('path', '?')}{mode}: {_megabytes(model.get('bytes', 0))} "
        f"(gzip {_megabytes(model.get('gzip_bytes', 0))}), input {input_info.get('dtype', '?')} "
        f"{input_info.get('shape', '?')}"
    )


def _data_line(results: Mapping[str, Any]) -> str:
    data = results.get("data") or {}
    where = data.get("path", "?")
    split = f", split {data['split']} of {data.get('manifest')}" if data.get("split") else ", every labelled image"
    return f"{where}{split}: {results.get('n', data.get('images', '?'))} images"


def lesion_check_lines(results: Mapping[str, Any]) -> list[str]:
    """The lesion check's figures (``results["lesion_check"]``): lesions rejected, non-lesions caught, per client."""
    block = results.get("lesion_check")
    if not block:
        return []
    lines = ["", f"Lesion check (reject at P(not_a_lesion) >= {block['threshold']:.3f})"]
    for name, part in (("LiteRT", block), ("MediaPipe", block.get("mediapipe"))):
        if not part:
            continue
        generated, crops = part["non_lesions"]["generated"], part["non_lesions"]["skin_crops"]
        lines.append(f"  {name:<10} lesions rejected {_percent(part['false_rejection'])} of {part['lesions']}; "
                     f"generated non-lesions caught {_percent(generated['caught'])} of {generated['n']}; "
                     f"lesion-free skin crops caught {_percent(crops['caught'])} of {crops['n']}")
    return lines


def _percent(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f} %"


def format_table(results: Mapping[str, Any]) -> str:
    """The terminal report: accuracy, reference and drift, per-class (melanoma first), latency, size, memory."""
    lines = ["Model:  " + _model_line(results), "Data:   " + _data_line(results)]
    if results.get("reference"):
        lines.append(f"Reference: {results['reference'].get('path')}")
    lines += client_lines(results)
    lines += ["", "Accuracy"] + _rows_to_text(summary_rows(results))
    if results.get("drift"):
        lines += [""] + _rows_to_text(drift_rows(results))
    if results.get("pipeline_drift"):
        lines += [""] + _rows_to_text(drift_rows(results, "pipeline_drift", PIPELINE_TITLE))
    lines += ["", "Per class (melanoma first)"] + _rows_to_text(per_class_rows(results))
    if results.get("fusion"):
        lines += ["", fusion_title(results)] + _rows_to_text(fusion_rows(results))
    lines += lesion_check_lines(results)
    if results.get("latency_ms"):
        lines += ["", "Latency (ms; XNNPACK; timed runs on real preprocessed images)"] + _rows_to_text(latency_rows(results))
    device = results.get("device") or {}
    lines += [
        "",
        f"Peak RSS: {_number(results.get('peak_rss_mb'), 1)} MB   CPU: {device.get('cpu', '?')} "
        f"({device.get('threads', '?')} hardware threads)",
    ]
    for note in results.get("notes") or []:
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def _markdown_table(rows: Sequence[Sequence[str]]) -> list[str]:
    header, *body = rows
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return lines


def to_markdown(results: Mapping[str, Any], title: str | None = None) -> str:
    """The report as Markdown: model and data lines, then accuracy, drift, per-class and latency tables."""
    model_name = Path((results.get("model") or {}).get("path", "model")).name
    lines = [f"## {title or 'dermtool bench: ' + model_name}", "", f"- Model: `{_model_line(results)}`",
             f"- Data: {_data_line(results)}"]
    if results.get("reference"):
        lines.append(f"- Reference: `{results['reference'].get('path')}`")
    device = results.get("device") or {}
    lines.append(f"- CPU: {device.get('cpu', '?')} ({device.get('threads', '?')} hardware threads); "
                 f"peak RSS {_number(results.get('peak_rss_mb'), 1)} MB")
    lines += [f"- {line.strip()}" for line in client_lines(results)]
    lines += ["", "### Accuracy", ""] + _markdown_table(summary_rows(results))
    if results.get("drift"):
        lines += ["", "### Drift against the reference", ""] + _markdown_table(drift_rows(results))
    if results.get("pipeline_drift"):
        lines += ["", f"### {PIPELINE_TITLE}", ""] + _markdown_table(
            drift_rows(results, "pipeline_drift", PIPELINE_TITLE))
    lines += ["", "### Per class (melanoma first)", ""] + _markdown_table(per_class_rows(results))
    if results.get("fusion"):
        lines += ["", f"### {fusion_title(results)}", ""] + _markdown_table(fusion_rows(results))
    if results.get("latency_ms"):
        lines += ["", "### Latency (ms)", ""] + _markdown_table(latency_rows(results))
    notes = results.get("notes") or []
    if notes:
        lines += [""] + [f"> Note: {note}" for note in notes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- plots
def _save(figure: Any, path: Path) -> Path:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight")
    return path


def plot_confusion_matrix(results: Mapping[str, Any], path: Path) -> Path:
    """The bench's confusion matrix, classes in :func:`class_order`, drawn by
    :func:`dermtool.train.plots.plot_confusion_matrix` (the run folder's plot)."""
    import numpy as np

    labels = list(results["confusion_matrix"]["labels"])
    counts = np.asarray(results["confusion_matrix"]["matrix"], dtype=np.int64)
    order = [labels.index(label) for label in class_order(labels)]
    return plots.plot_confusion_matrix(counts[np.ix_(order, order)], [labels[index] for index in order], path,
                                       title=f"Confusion matrix (n={int(counts.sum())})")


def plot_reliability(results: Mapping[str, Any], path: Path) -> Path:
    """Reliability diagram: accuracy against mean confidence per bin, with the bin counts below."""
    import matplotlib.pyplot as plt
    import numpy as np

    curve = results["reliability"]  # dermtool.metrics.reliability_curve: empty bins hold None

    def as_array(values: Sequence[Any]) -> Any:
        return np.array([np.nan if value is None else value for value in values], dtype=np.float64)

    confidence = as_array(curve["confidence"])
    accuracy = as_array(curve["accuracy"])
    counts = as_array(curve["count"])
    edges = as_array(curve["bin_edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    widths = np.diff(edges)
    filled = counts > 0
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.bar(centres[filled], accuracy[filled], width=widths[filled], edgecolor="black", alpha=0.7, label="accuracy")
    top.plot(confidence[filled], accuracy[filled], "o", color="tab:red", markersize=3, label="mean confidence")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    ece = results.get("ece")
    top.set_title(f"Reliability diagram (ECE {_number(ece)})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, counts, width=widths, edgecolor="black", color="tab:grey")
    bottom.set_xlabel("top-1 confidence")
    bottom.set_ylabel("images")
    bottom.set_xlim(0, 1)
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def plot_latency_histogram(results: Mapping[str, Any], path: Path) -> Path:
    """Histogram of the per-run latencies, one series per thread count, with p50 and p99 marked."""
    import matplotlib.pyplot as plt
    import numpy as np

    samples = results["latency_samples_ms"]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    every = np.concatenate([np.asarray(values, dtype=np.float64) for values in samples.values()])
    # Range up to the largest p99 (a few outliers on a busy machine would squash everything else).
    upper = max(float(np.percentile(np.asarray(values, dtype=np.float64), 99)) for values in samples.values())
    lower = float(every.min())
    bins = np.linspace(lower, upper if upper > lower else lower + 1e-3, 40)
    for (threads, values), colour in zip(samples.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        values = np.asarray(values, dtype=np.float64)
        axes.hist(np.clip(values, bins[0], bins[-1]), bins=bins, alpha=0.55, color=colour,
                  label=f"{threads} thread{'s' if str(threads) != '1' else ''} (n={values.size})")
        for quantile, style in ((50, "-"), (99, ":")):
            axes.axvline(np.percentile(values, quantile), color=colour, linestyle=style, linewidth=1)
    axes.set_xlabel("latency per invoke (ms); solid p50, dotted p99; last bin holds everything above")
    axes.set_ylabel("runs")
    axes.set_title(f"Latency: {Path((results.get('model') or {}).get('path', '')).name}")
    axes.legend(fontsize=8)
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def write_plots(results: Mapping[str, Any], directory: str | Path) -> list[Path]:
    """Write confusion_matrix.png, reliability.png and latency_histogram.png into ``directory``."""
    import matplotlib

    matplotlib.use("Agg")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [plot_confusion_matrix(results, directory / "confusion_matrix.png")]
    if results.get("reliability"):
        written.append(plot_reliability(results, directory / "reliability.png"))
    if results.get("latency_samples_ms"):
        written.append(plot_latency_histogram(results, directory / "latency_histogram.png"))
    return written


__all__ = [
    "class_order",
    "format_table",
    "to_markdown",
    "write_plots",
    "summary_rows",
    "per_class_rows",
    "latency_rows",
    "drift_rows",
    "fusion_rows",
]
