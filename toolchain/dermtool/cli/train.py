"""``dermtool train``: fine-tune a pretrained mobile CNN into a run folder.

Thin: options become a :class:`dermtool.config.Config`, :func:`dermtool.train.trainer.train` does the
work (imported inside the command so that ``dermtool --help`` stays fast).
"""

from __future__ import annotations

from pathlib import Path

import click

from dermtool import DermtoolError
from dermtool.cli.output import JsonOutput, json_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="TOML configuration (see configs/: multisource_cpu (recommended), demo_cpu, ham10000_cpu, ham10000_gpu, smoke).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Labelled image folder (any of the three layouts); overrides data.data_dir.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder to write [default: runs/<config file name without .toml>].")
@click.option("--split", "split_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="SPLIT.csv (image_id,label,group,split) to use instead of making a split.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace the run files already in --out (other files are kept).")
@click.option("--epochs", type=click.IntRange(min=0), help="Fine-tuning epochs (train.finetune_epochs).")
@click.option("--image-size", type=click.IntRange(min=32), help="Input size in pixels (data.image_size).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size (train.batch_size).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any config value; repeatable (e.g. --set train.loss=focal).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-epoch lines (the run log is still written).")
@json_option("the run's metrics.json, plus 'run' (the run folder),")
def train(config_path: Path, data_dir: Path | None, out_dir: Path | None, split_csv: Path | None, resume: bool,
          overwrite: bool, epochs: int | None, image_size: int | None, batch_size: int | None,
          overrides: tuple[str, ...], quiet: bool, json_out: str | None) -> None:
    """Fine-tune a pretrained mobile CNN on labelled skin images.

    Two phases: the classifier head on a frozen backbone, then fine-tuning with a warm-up and a cosine
    learning-rate decay. The best epoch (validation balanced accuracy) is kept, its probabilities are
    calibrated (temperature scaling), and the run folder receives model.keras, labels.txt, split.csv,
    config.toml, history.csv, metrics.json, input_spec.json and plots. A checkpoint is written after
    every epoch: an interrupted run continues with --resume. A new run that fails before its first epoch
    (missing data, a bad image folder ...) leaves nothing in --out, so the same command can simply be rerun.

    \b
    Examples:
      dermtool train --config configs/ham10000_cpu.toml --out runs/lite0
      dermtool train --config configs/multisource_cpu.toml --out runs/multisource
      dermtool train --config configs/ham10000_cpu.toml --data ~/data/ham10000 --epochs 2
      dermtool train --config configs/ham10000_cpu.toml --out runs/lite0 --resume
      dermtool train --config configs/smoke.toml --set train.loss=focal --set data.image_size=96
      dermtool train --config configs/ham10000_cpu.toml --split split.csv --overwrite
      dermtool train --config configs/smoke.toml --out runs/smoke --json - | jq .test.balanced_accuracy
    """
    from dermtool.config import apply_overrides, load_config

    from dermtool.files import check_output_folder

    output = JsonOutput(json_out)  # a bad --json PATH is refused before anything else
    if out_dir is not None:
        check_output_folder(out_dir, "--out")  # below a file (/etc/hostname/r), or a device
    config = load_config(config_path)
    options = list(overrides)
    if epochs is not None:
        options.append(f"train.finetune_epochs={epochs}")
    if image_size is not None:
        options.append(f"data.image_size={image_size}")
    if batch_size is not None:
        options.append(f"train.batch_size={batch_size}")
    if options:
        config = apply_overrides(config, options)
    if data_dir is not None and config.data.sources:
        raise DermtoolError(f"{config_path} names its data folders in [[data.sources]]; --data would replace only "
                            "one of them: edit the config's data_dir of each source instead")
    if data_dir is not None:
        config.data.data_dir = str(data_dir)
    out_dir = out_dir or Path("runs") / config_path.stem

    from dermtool.train.trainer import train as run_training

    for name, configured_data in ([(source.name, source.data_dir) for source in config.data.sources]
                                  or [("", config.data.data_dir)]):
        if not configured_data:
            raise DermtoolError(f"{config_path} names no data folder: give --data DATA (a labelled image folder) or "
                                "set data.data_dir in the config")
        if not Path(configured_data).expanduser().is_dir():
            what = "not a folder" if Path(configured_data).expanduser().exists() else "not found"
            where = f"set data_dir of source {name!r}" if name else "give --data DATA or set data.data_dir"
            raise DermtoolError(f"data folder {what}: {configured_data} ({where})")
    from dermtool.train.devices import writes_run_folder

    # (a non-chief worker of a multi-worker run never writes --out: what is there is the chief's)
    fresh = writes_run_folder(config.train.strategy) and not resume and (
        not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())))
    try:
        with output.capture():  # with --json -, the per-epoch lines go to stderr
            run = run_training(config, out_dir, resume=resume, overwrite=overwrite, split_csv=split_csv,
                               progress=not quiet)
    except Exception as error:
        if fresh:  # a run that failed before its first epoch leaves nothing behind: the retry starts clean
            _remove_unstarted_run(out_dir)
        if isinstance(error, OSError) and _inside(getattr(error, "filename", None), out_dir):
            # e.g. --out /proc/x: the folder cannot be made there (one line, not a traceback)
            raise DermtoolError(f"--out {out_dir}: cannot write the run folder there "
                                f"({error.strerror or error})") from None
        raise
    except KeyboardInterrupt:
        click.echo(f"Interrupted. The completed epochs are saved in {out_dir}; continue with:\n"
                   f"  dermtool train --config {config_path} --out {out_dir} --resume", err=True)
        raise SystemExit(130) from None

    if run is None:  # a non-chief worker of a multi-worker run: the chief reports
        output.report(f"Worker done: the chief of the multi-worker run writes the run folder {out_dir}")
        output.write({"run": None})
        return
    _report(output, run)
    output.write({"run": str(run.path), **run.metrics})


def _inside(filename: object, folder: Path) -> bool:
    """Whether the path an OSError names is ``folder`` or lies below it."""
    if not filename:
        return False
    try:
        path = Path(str(filename)).absolute()
        base = Path(folder).absolute()
    except (OSError, ValueError):
        return False
    return path == base or base in path.parents


def _report(output: JsonOutput, run) -> None:
    """The text summary of a finished run (left out with --json -)."""
    from dermtool.evaluate import format_metrics_table

    result = run.metrics
    output.report(f"Run folder: {run.path}")
    output.report(f"Best epoch: {result.get('best_epoch')} of {result.get('epochs')}; "
                  f"temperature {run.temperature:.3f}")
    for name in ("test", "val"):
        if result.get(name):
            output.report(f"\n{name.capitalize()} metrics (calibrated):")
            output.report(format_metrics_table(result[name]))
            break
    per_source = result.get("per_source") or {}
    if per_source:
        output.report("\nPer source (test, calibrated):")
        for name, entry in per_source.items():
            test = entry.get("test")
            if test:
                output.report(f"  {name:<16} {entry.get('kind', ''):<12} images {test['n']:>5}, balanced accuracy "
                              f"{test['balanced_accuracy']:.3f}, AUC {_fraction(test.get('auc_macro'))}")
    referral = result.get("referral")
    if referral and referral.get("test"):
        test = referral["test"]
        output.report(f"\nReferral ({'+'.join(referral['classes'])} >= {referral['threshold']:.3f}, set on val for "
                      f"sensitivity >= {referral['target_sensitivity']:.2f}"
                      + (f" at {referral['confidence']:.0%} confidence" if referral.get("confidence") else "")
                      + "): test sensitivity "
                      f"{_fraction(test['sensitivity'])}, specificity {_fraction(test['specificity'])}")
        for name, entry in (referral.get("per_source") or {}).items():
            if entry.get("test"):
                own = entry.get("own_threshold") or {}
                alone = (f" (its own threshold {own['threshold']:.3f}: {_fraction(own['test']['sensitivity'])}, "
                         f"{_fraction(own['test']['specificity'])})"
                         if own.get("test") and own["threshold"] != referral["threshold"] else "")
                output.report(f"  {name:<20} test sensitivity {_fraction(entry['test']['sensitivity'])}, "
                              f"specificity {_fraction(entry['test']['specificity'])}{alone}")
    for key, title in (("per_skin_type", "Fitzpatrick type"), ("per_skin_tone", "skin-tone class")):
        table = result.get(key)
        if table:
            output.report(f"\nRecall per {title} (test; 'too few' below 10 images):")
            for value, entry in table.get("types", table.get("tones", {})).items():
                cells = [f"{label} {cell['recall']:.2f} (n {cell['n']})" if isinstance(cell["recall"], float)
                         else f"{label} too few (n {cell['n']})" for label, cell in entry["per_class_recall"].items()]
                output.report(f"  {value} ({entry['n']} images): " + ", ".join(cells))
    aside = result.get("out_of_scope")
    if aside:
        output.report("\nOut of scope (labels never trained), called benign:")
        for name, entry in aside.items():
            output.report(f"  {name:<20} {entry['benign']} of {entry['n']} ({entry['called_benign']:.1%}); "
                          f"referred {entry['refer']}, uncertain {entry['uncertain']}")
    pairs = result.get("paired_photos")
    if pairs:
        output.report(f"\nPaired photos ({' + '.join(pairs['sources'])}, {pairs['lesions']} test lesions): same "
                      f"outcome {pairs['same_outcome']:.1%}, same top class {pairs['same_top_class']:.1%}; "
                      f"malignant lesions referred by either photo {_fraction(pairs['malignant_referred_by_either'])}, "
                      f"by both {_fraction(pairs['malignant_referred_by_both'])}")


def _remove_unstarted_run(out_dir: Path) -> None:
    """Delete what a fresh run wrote into ``out_dir`` (config.toml, train.log, ...) unless an epoch finished,
    and the folder itself when it is empty then (it was empty or absent before the run)."""
    from dermtool.train.checkpoints import RunState, clear_run_files

    state = RunState.read(out_dir) if out_dir.is_dir() else None
    if state is not None and state.completed_epochs > 0:
        return  # resumable work exists: keep it
    try:
        clear_run_files(out_dir)
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
    except OSError:
        pass


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


__all__ = ["train", "DermtoolError"]
