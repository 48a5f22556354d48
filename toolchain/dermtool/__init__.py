"""dermtool: an offline toolchain that turns skin-lesion photos into a small, calibrated on-device classifier.

dermtool is a decision-support research tool, not a medical device.

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` so that TensorFlow, whenever it is imported later,
uses Keras 2 (``tf_keras``): quantization-aware training and pruning (tensorflow-model-optimization) need it.
The package itself imports no TensorFlow at import time, so ``dermtool --help`` stays fast.

Imports: dermtool's own modules import each other at module level (the structure a reader or a type checker
sees is the real one). Two kinds of import are deferred into the functions that need them, on purpose:
TensorFlow / tf_keras / MediaPipe / matplotlib and the other heavy libraries (seconds to load: a module that
only reads a CSV must not pay for them), and in ``dermtool.cli`` what a command needs, imported when the command
runs, so that ``dermtool --help`` and each command's ``--help`` load none of the library.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

DISCLAIMER = (
    "dermtool is a decision-support research tool, not a medical device. "
    "Its output is not a diagnosis: a clinician must decide."
)


class DermtoolError(ValueError):
    """A user-facing error: the command line prints its message as one line and exits with ``exit_code``
    (2: a usage error, a missing file, a bad folder ...)."""

    exit_code = 2


class CheckFailed(DermtoolError):
    """A gate or check refused the result (export's accuracy gate, a model with non-finite outputs): the
    command line exits 3. ``details``: what the check measured, for ``--json`` (e.g. the gate's numbers)."""

    exit_code = 3

    def __init__(self, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.details = details


class ModelOutputError(CheckFailed):
    """The model gave non-finite outputs (NaN or infinity): a corrupt model. Never turned into an outcome;
    the web app answers 500 with the message; the command line exits 3."""


def check_finite_outputs(values, model: object) -> None:
    """Raise :class:`ModelOutputError` unless every value of ``values`` (probabilities or logits) is finite."""
    import numpy as np

    array = np.asarray(values)
    if array.size and not np.all(np.isfinite(array)):
        raise ModelOutputError(
            f"{model}: the model gave non-finite outputs (NaN or infinity), so its answer cannot be trusted; "
            "its weights are probably corrupt. No outcome is given: export or train the model again"
        )


def __getattr__(name: str):
    """Lazy public API: ``dermtool.predict(images, model, top_k=3)`` and ``dermtool.explain(image, model,
    class_name=None)`` import their modules (and TensorFlow or LiteRT) only when first used."""
    if name == "predict":
        from dermtool.prediction.predictor import predict

        return predict
    if name == "explain":
        import dermtool.explain as explain_package  # a callable package: dermtool.explain(image, model)

        return explain_package
    raise AttributeError(f"module 'dermtool' has no attribute {name!r}")


__all__ = ["__version__", "DISCLAIMER", "DermtoolError", "CheckFailed", "ModelOutputError", "check_finite_outputs", "predict",
           "explain"]
