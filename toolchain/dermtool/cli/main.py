"""Entry point of the ``dermtool`` command.

Commands are loaded lazily from ``dermtool.cli.<module>`` so that ``dermtool --help`` imports neither
TensorFlow nor any command's dependencies. A :class:`dermtool.DermtoolError` raised anywhere below a
command becomes one line on stderr and its exit status (2; 3 for :class:`dermtool.CheckFailed`, a refusing
gate or check), never a traceback; the statuses are listed in :mod:`dermtool.cli.output`. TensorFlow's start-up logging is
silenced before its first import (:mod:`dermtool.quiet`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from dermtool import DermtoolError, __version__

# command name -> (module under dermtool.cli, attribute, one-line help shown by `dermtool --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("data", "data", "Check a labelled image folder and make lesion-grouped splits."),
    "weights": ("weights", "weights", "Import ImageNet weights for the EfficientNet-Lite backbones."),
    "train": ("train", "train", "Fine-tune a pretrained mobile CNN on labelled skin images."),
    "evaluate": ("evaluate", "evaluate", "Metrics of a trained float model on a labelled folder."),
    "fuse": ("fuse", "fuse", "Fit the fusion of questionnaire answers with the image."),
    "lesion-check": ("lesion_check", "lesion_check", "Fit the model's lesion check (its 'not a lesion' head)."),
    "export": ("export", "export", "Write a TFLite model (float, fp16, dynamic, int8; QAT; pruning)."),
    "bench": ("bench", "bench", "Accuracy, drift against the float model, and latency of a .tflite."),
    "predict": ("predict", "predict", "Calibrated probabilities and a referral outcome per image."),
    "explain": ("explain", "explain", "Grad-CAM heat map of the regions behind a prediction."),
    "serve": ("serve", "serve", "A local web app for clinicians (offline, localhost by default)."),
}


def _available(name: str) -> bool:
    module = COMMANDS[name][0]
    return importlib.util.find_spec(f"dermtool.cli.{module}") is not None


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return super().get_command(ctx, name)  # commands added with @cli.command, if any
        module_name, attribute, _ = COMMANDS[name]
        module = importlib.import_module(f"dermtool.cli.{module_name}")
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DermtoolError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(getattr(error, "exit_code", 2))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dermtool")
def cli() -> None:
    """dermtool: train, export and check an on-device skin-lesion classifier, offline.

    \b
    The pipeline, on DATA, a folder of labelled images (such as HAM10000: the image
    files and a CSV with image_id and dx; or one sub-folder per class):
      dermtool data check DATA                  validate every image
      dermtool data split DATA --out split.csv  lesion-grouped train/val/test split
      dermtool train --config configs/ham10000_cpu.toml --out runs/lite0
      dermtool export runs/lite0 --out lite0_int8.tflite --int8
      dermtool bench lite0_int8.tflite --data DATA --split test --reference runs/lite0

    \b
    Every command that produces results takes --json PATH ('-': stdout, nothing else).
    Exit status: 0 ok, 1 partial failure (unreadable images in predict, data check --strict),
    2 usage error, 3 refused by a gate or check (export's accuracy gate, a non-finite model).

    dermtool is a decision-support research tool, not a medical device.
    """
    from dermtool import quiet

    quiet.install()  # before any command imports TensorFlow: no C++ start-up log lines on stderr


def main() -> None:
    cli(prog_name="dermtool")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
