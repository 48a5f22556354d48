"""``dermtool data``: check a labelled image folder, and make a lesion-grouped train/val/test split.

Thin: options are parsed here, the work is done by :mod:`dermtool.data.check` and
:mod:`dermtool.data.split` (imported inside the commands so ``dermtool --help`` stays fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dermtool import DermtoolError
from dermtool.cli.output import EXIT_PARTIAL, JsonOutput, json_option

#: How many examples each section of the check report prints.
SHOWN = 5


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def data() -> None:
    """Check a labelled image folder and make lesion-grouped splits.

    \b
    DATA is a folder in one of three layouts, detected automatically:
      1. a CSV (image_id, dx or label, optional lesion_id) + images anywhere below
         (HAM10000: HAM10000_metadata.csv + images/; masks/ is ignored)
      2. an ISIC ground-truth CSV: image,MEL,NV,BCC,AKIEC,BKL,DF,VASC (0/1 per class)
      3. one sub-folder per class (DATA/mel/*.jpg, DATA/nv/*.jpg, ...)

    \b
    Examples:
      dermtool data check ~/data/ham10000
      dermtool data split ~/data/ham10000 --out split.csv --seed 0
    """


def _relative(path: str, root: str) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _format_report(report: Any) -> str:
    """The human-readable check report."""
    root = report.data_dir
    labels = f" (labels: {_relative(report.csv_path, root)})" if report.csv_path else ""
    lines = [f"Data: {root}", f"Layout: {report.layout}{labels}"]
    lines.append(
        f"Images: {report.n_images} listed, {report.n_valid} usable, {len(report.errors)} error(s), "
        f"{len(report.warnings)} warning(s)  [{report.seconds:.1f} s]"
    )
    per_class = ", ".join(f"{label} {count}" for label, count in report.valid_counts.items())
    lines.append(f"Classes ({len(report.classes)}): {per_class or 'none'}")

    lines.append("")
    if report.errors:
        lines.append(f"Errors ({len(report.errors)}): images that cannot be used")
        for error in report.errors:
            message = error["message"].removeprefix(f"{error['path']}: ")  # the path is printed first already
            lines.append(f"  {_relative(error['path'], root)}: {error['reason']}: {message}")
    else:
        lines.append("Errors: none, every listed image decodes")

    if report.warnings:
        lines.append(f"Warnings ({len(report.warnings)}), by kind:")
        by_issue: dict[str, list[dict[str, str]]] = {}
        for warning in report.warnings:
            by_issue.setdefault(warning["issue"], []).append(warning)
        for issue, items in sorted(by_issue.items(), key=lambda item: (-len(item[1]), item[0])):
            examples = [
                _relative(item["path"], root) + (f" ({item['detail']})" if item.get("detail") else "")
                for item in items[:SHOWN]
            ]
            more = f", ... {len(items) - SHOWN} more" if len(items) > SHOWN else ""
            lines.append(f"  {issue}: {len(items)}, e.g. {'; '.join(examples)}{more}")
    else:
        lines.append("Warnings: none")

    if report.duplicates:
        lines.append(f"Duplicates ({len(report.duplicates)} group(s) of byte-identical files):")
        for group in report.duplicates:
            labels = sorted(set(group["labels"]))
            note = f"label {labels[0]}" if group["same_label"] else f"LABELS DIFFER: {', '.join(group['labels'])}"
            note += ", same lesion" if group["same_group"] else ", different lesions " + "/".join(group["groups"])
            lines.append(f"  {' = '.join(group['image_ids'])} ({note})")
    else:
        lines.append("Duplicates: none")

    if report.split is not None:
        split = report.split
        counts = ", ".join(f"{name} {count}" for name, count in split["images_per_split"].items())
        lines.append(f"Split: {split['path']} ({counts})")
        lines.append(f"  groups shared between splits: {split['shared_groups']}")
        for leak in split["leaking_groups"][:SHOWN]:
            lines.append(f"    {leak['group']} in {'/'.join(leak['splits'])}")
        lines.append(f"  duplicates across splits: {len(report.cross_split_duplicates)}")
        for group in report.cross_split_duplicates[:SHOWN]:
            pairs = ", ".join(f"{image_id} ({name})" for image_id, name in zip(group["image_ids"], group["splits"]))
            lines.append(f"    {pairs}")
        if split["not_in_data"]:
            lines.append(f"  split rows without a usable data record: {split['not_in_data']}, e.g. "
                         + ", ".join(split["not_in_data_examples"][:SHOWN]))
        if split["not_in_split"]:
            lines.append(f"  images not in the split: {split['not_in_split']}, e.g. "
                         + ", ".join(split["not_in_split_examples"][:SHOWN]))

    if report.missing:
        lines.append(f"Missing ({len(report.missing)} listed in the CSV without an image file): "
                     + ", ".join(report.missing[:SHOWN]) + (", ..." if len(report.missing) > SHOWN else ""))
    else:
        lines.append("Missing: none")
    if report.unlisted:
        lines.append(f"Unlisted ({len(report.unlisted)} image files the labels do not name, not used): "
                     + ", ".join(_relative(path, root) for path in report.unlisted[:SHOWN])
                     + (", ..." if len(report.unlisted) > SHOWN else ""))
    else:
        lines.append("Unlisted: none")
    if report.rare_labels:
        rare = ", ".join(f"{label} {count}" for label, count in report.rare_labels.items())
        lines.append(f"Rare labels (fewer than {report.min_per_class} usable images): {rare}")
    else:
        lines.append(f"Rare labels: none (every class has at least {report.min_per_class} usable images)")

    failures = report.strict_failures()
    lines.append("")
    lines.append("Result: " + ("OK, fit for training" if not failures else "PROBLEMS: " + "; ".join(failures)))
    return "\n".join(lines)


@data.command("check", short_help="Validate every image; report errors, warnings, duplicates, leaks.")
@click.argument("data_dir", metavar="DATA", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Check every data folder of a training config ([[data.sources]]) instead of DATA, one "
                   "report per source.")
@click.option("--labels", "labels_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="The label CSV, when it is not at the top of DATA or there are several.")
@click.option("--split", "split_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="A split file (image_id,label,group,split) to check for leakage; "
                   "by default one at the top of DATA is used.")
@json_option("the full report (with --config: {source: report})")
@click.option("--strict", is_flag=True,
              help="Exit 1 when an image is unusable, a listed image has no file, or splits leak.")
@click.option("--min-per-class", type=click.IntRange(min=0), default=10, show_default=True,
              help="Report classes with fewer usable images than this as rare.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Decoding threads (default: twice the CPU cores, at most 16).")
def check_command(data_dir: Path | None, config_path: Path | None, labels_csv: Path | None, split_csv: Path | None, json_out: str | None,
                  strict: bool, min_per_class: int, workers: int | None) -> None:
    """Validate every image of DATA and report what is wrong, without stopping at the first problem.

    Each image is read, hashed and fully decoded. The report lists unusable images with their reason
    (empty, not_an_image, truncated, too_large, unreadable, and outside_data for a CSV id naming a file
    outside DATA, which is never read), warnings grouped by kind (greyscale, rgba,
    cmyk, 16-bit, palette, exif_rotated, tiny, ...), byte-identical duplicates, leakage across a split,
    ids without a file (missing), files the labels do not name (unlisted) and rare classes.

    The exit status is 0 unless --strict is given and there is an unusable image, a missing image or a
    leak between splits (then 1, after the report and the JSON are written). A folder that fits no
    layout is an error (exit 2).

    \b
    Examples:
      dermtool data check ~/data/ham10000
      dermtool data check DATA --labels DATA/ISIC2018_Task3_Training_GroundTruth.csv
      dermtool data check DATA --split runs/lite0/split.csv --json check.json --strict
      dermtool data check --config configs/multisource_cpu.toml --json check.json
      dermtool data check DATA --json - --strict | jq '.errors | length'
    """
    if (data_dir is None) == (config_path is None):
        raise DermtoolError("give DATA or --config CONFIG.toml (one of them)")
    output = JsonOutput(json_out)
    if config_path is not None:
        _check_sources(config_path, labels_csv, split_csv, output, strict, min_per_class, workers)
        return
    from dermtool.data.check import check_dataset

    if split_csv is not None and not split_csv.is_file():
        raise DermtoolError(f"split file not found: {split_csv}")
    with output.capture():
        report = check_dataset(data_dir, labels_csv=labels_csv, split_csv=split_csv,
                               min_per_class=min_per_class, workers=workers, progress=True)
    output.report(_format_report(report))
    output.write(report.to_dict())
    if strict and report.strict_failures():
        raise click.exceptions.Exit(EXIT_PARTIAL)


def _check_sources(config_path: Path, labels_csv: Path | None, split_csv: Path | None, output: JsonOutput,
                   strict: bool, min_per_class: int, workers: int | None) -> None:
    """``data check --config``: one check report per source of the config (JSON: ``{source: report}``)."""
    from dermtool.config import load_config
    from dermtool.data.check import check_dataset
    from dermtool.data.sources import resolve_sources

    if labels_csv is not None or split_csv is not None:
        raise DermtoolError("--labels and --split name files of one folder: with --config, set labels_csv in "
                            "the config's sources and check a split per folder (dermtool data check DATA --split)")
    reports = {}
    checked: dict[tuple[str, str], tuple[str, Any]] = {}  # (folder, labels CSV) -> (first source, its report)
    for source in resolve_sources(load_config(config_path).data):
        output.report(f"== Source {source.name} ({source.kind}) ==")
        key = (str(Path(source.data_dir).resolve()), str(source.labels_csv or ""))
        if key in checked:  # two sources of one folder (one kind of photo each): one check of the folder
            report = checked[key][1]
            output.report(f"{source.data_dir}: the folder of source {checked[key][0]} (checked above)"
                          + (f"; this source reads its rows with {source.where}" if source.where else "") + "\n")
        else:
            with output.capture():
                report = check_dataset(Path(source.data_dir), labels_csv=source.labels_csv or None, split_csv=None,
                                       min_per_class=min_per_class, workers=workers, progress=True)
            checked[key] = (source.name, report)
            output.report(_format_report(report) + "\n")
            if source.where:
                output.report(f"Source {source.name} reads the rows with {source.where}\n")
        if source.out_of_scope:
            output.report(f"Out of scope (not trained, checked at the end of training): {', '.join(source.out_of_scope)}\n")
        if source.label_map:
            output.report(f"Label map: {', '.join(f'{key} -> {value or chr(8709)}' for key, value in source.label_map.items())}\n")
        reports[source.name] = report
    output.write({name: report.to_dict() for name, report in reports.items()})
    if strict and any(report.strict_failures() for report in reports.values()):
        raise click.exceptions.Exit(EXIT_PARTIAL)


def cross_split_duplicates(records: Any, rows: Any) -> list[list[tuple[str, str]]]:
    """Groups of byte-identical image files whose copies the split put in different splits, each as
    ``[(image_id, split), ...]``. Files are compared by size first; only equal sizes are hashed (sha256)."""
    from dermtool.data.images import identical_files

    split_of = {row.image_id: row.split for row in rows}
    listed = [record for record in records if record.image_id in split_of]
    leaks = [sorted((record.image_id, split_of[record.image_id]) for record in copies)
             for copies in identical_files(listed, lambda record: record.path)
             if len({split_of[record.image_id] for record in copies}) > 1]
    return sorted(leaks)


@data.command("split", short_help="Write a lesion-grouped, stratified train/val/test split.")
@click.argument("data_dir", metavar="DATA", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Split the data of a training config instead of DATA: every [[data.sources]] folder, each on "
                   "its own (the split `dermtool train` makes; seed and fractions from the config).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The split file to write: image_id,label,group,split.")
@click.option("--labels", "labels_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="The label CSV, when it is not at the top of DATA or there are several.")
@click.option("--seed", type=int, default=None, help="Random seed: the same seed gives the same split.  [default: 0]")
@click.option("--val", "val_fraction", type=float, default=None,
              help="Fraction of each class for validation.  [default: 0.15]")
@click.option("--test", "test_fraction", type=float, default=None,
              help="Fraction of each class for testing.  [default: 0.15]")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def split_command(data_dir: Path | None, config_path: Path | None, out_path: Path, labels_csv: Path | None,
                  seed: int | None, val_fraction: float | None, test_fraction: float | None, overwrite: bool) -> None:
    """Write a train/val/test split of DATA, grouped by lesion and stratified by class.

    All images of one lesion (lesion_id, or patient_id) go to the same split, so the test score is not
    inflated by near-identical images seen in training. Each class is split separately to the requested
    fractions; a class with at least three lesions appears in every split. The same DATA and seed always
    give the same split. Prints images (lesions) per class and split, and the leakage check, and warns
    when byte-identical image files (listed under different lesions) landed in different splits.

    With --config, the folders are the config's [[data.sources]] (each split on its own, grouped by its
    lesion or patient ids, labels renamed by its label_map) and the file gains a column 'source'.

    \b
    Examples:
      dermtool data split ~/data/ham10000 --out split.csv
      dermtool data split DATA --out split.csv --seed 1 --val 0.1 --test 0.2 --overwrite
      dermtool data split --config configs/multisource_cpu.toml --out split.csv
    """
    from dermtool.data.layouts import read_dataset
    from dermtool.data.split import make_split, split_summary, write_split_csv

    from dermtool.files import check_output_path

    check_output_path(out_path, "--out", "split.csv", stdout_ok=False)  # a folder, device, FIFO, below a file
    if out_path.exists() and not overwrite:
        raise DermtoolError(f"{out_path} exists; pass --overwrite to replace it")
    if (data_dir is None) == (config_path is None):
        raise DermtoolError("give DATA or --config CONFIG.toml (one of them)")
    if config_path is not None:
        _split_sources(config_path, out_path, seed, val_fraction, test_fraction)
        return
    seed = 0 if seed is None else seed
    val_fraction = 0.15 if val_fraction is None else val_fraction
    test_fraction = 0.15 if test_fraction is None else test_fraction
    dataset = read_dataset(data_dir, labels_csv)
    if not dataset.records:
        raise DermtoolError(f"{data_dir}: none of the {len(dataset.missing)} listed images was found on disk")
    rows = make_split(dataset.records, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    table, shared = split_summary(rows)
    if shared:  # cannot happen with make_split; a guard on the invariant before anything is written
        raise DermtoolError(f"internal error: {shared} group(s) ended up in two splits; nothing written")
    write_split_csv(rows, out_path)
    click.echo(f"Data: {dataset.root} (layout {dataset.layout}), {len(rows)} images, seed {seed}")
    if dataset.missing:
        click.echo(f"Note: {len(dataset.missing)} listed image(s) have no file and are left out "
                   f"(e.g. {', '.join(dataset.missing[:SHOWN])}); run 'dermtool data check' for details")
    click.echo(table)
    leaks = cross_split_duplicates(dataset.records, rows)
    if leaks:
        shown = "; ".join(" = ".join(f"{image_id} ({split})" for image_id, split in group) for group in leaks[:SHOWN])
        click.echo(f"Warning: {len(leaks)} group(s) of byte-identical images landed in different splits "
                   f"(e.g. {shown}): the test score is inflated by images seen in training. Give the copies "
                   "one lesion_id, or remove them; `dermtool data check DATA --split SPLIT.csv` lists them all.",
                   err=True)
    click.echo(f"Split written to {out_path}")


def _split_sources(config_path: Path, out_path: Path, seed: int | None, val_fraction: float | None,
                   test_fraction: float | None) -> None:
    """``data split --config``: the split a training run of that config makes, one table per source."""
    from dermtool.config import load_config
    from dermtool.data.sources import describe_sources, make_source_split, read_sources, resolve_sources
    from dermtool.data.split import make_split, split_summary, write_split_csv

    config = load_config(config_path)
    seed = config.data.split_seed if seed is None else seed
    val_fraction = config.data.val_fraction if val_fraction is None else val_fraction
    test_fraction = config.data.test_fraction if test_fraction is None else test_fraction
    collection = read_sources(resolve_sources(config.data))
    make = make_source_split if config.data.sources else make_split
    rows = make(collection.records, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    click.echo(f"Config: {config_path}, {len(rows)} images, seed {seed}")
    click.echo(describe_sources(collection))
    for key, count in collection.dropped.items():
        click.echo(f"Note: the label map leaves out {count} image(s) labelled {key}")
    for source in collection.sources:
        source_rows = [row for row in rows if row.source == source.name] if config.data.sources else rows
        table, shared = split_summary(source_rows)
        if shared:  # cannot happen with make_split; a guard on the invariant before anything is written
            raise DermtoolError(f"internal error: {shared} group(s) ended up in two splits; nothing written")
        click.echo(f"\nSource {source.name} ({source.kind}):")
        click.echo(table)
    for source in collection.sources:
        leaks = cross_split_duplicates([record for record in collection.records if record.source == source.name], rows)
        if leaks:
            click.echo(f"Warning: source {source.name}: {len(leaks)} group(s) of byte-identical images landed in "
                       "different splits; `dermtool data check` on its folder lists them.", err=True)
    write_split_csv(rows, out_path)
    click.echo(f"Split written to {out_path}")


__all__ = ["data"]
