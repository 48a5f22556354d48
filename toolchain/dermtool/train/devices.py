"""Where training runs: the distribution strategy and the mixed-precision policy.

- ``train.strategy``: ``auto`` = MirroredStrategy over all GPUs when there are several, otherwise the
  default strategy (one GPU, or the CPU); ``default`` = the default strategy; ``mirrored`` =
  ``tf.distribute.MirroredStrategy`` (all local GPUs); ``multi_worker`` =
  ``tf.distribute.MultiWorkerMirroredStrategy`` (reads the cluster from the ``TF_CONFIG`` variable).
- ``train.mixed_precision``: ``auto`` = ``mixed_float16`` when a GPU is present, float32 on the CPU
  (float16 arithmetic is slow on CPUs); ``on`` / ``off`` force it. The model's softmax stays float32 and
  the trainer computes the loss from float32 logits under a loss-scaling optimizer.

The model and the optimizer must be created inside ``strategy.scope()``.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

from dermtool import DermtoolError


@dataclass
class Devices:
    strategy: Any  # tf.distribute.Strategy
    mixed_precision: bool
    gpus: int
    description: str

    @property
    def is_chief(self) -> bool:
        """True on the worker that writes the run folder (the only one unless multi-worker)."""
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is None or not getattr(resolver, "cluster_spec", None):
            return True
        task_type, task_id = resolver.task_type, resolver.task_id
        if task_type is None:
            return True
        has_chief = "chief" in resolver.cluster_spec().as_dict()
        return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def choose_devices(strategy_name: str, mixed_precision: str) -> Devices:
    """The strategy and precision for ``train.strategy`` / ``train.mixed_precision``."""
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    if strategy_name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise DermtoolError("train.strategy = 'multi_worker' needs the TF_CONFIG environment variable "
                                "describing the cluster (see tf.distribute.MultiWorkerMirroredStrategy)")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise DermtoolError(f"TF_CONFIG is not valid JSON: {error}") from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif strategy_name == "mirrored" or (strategy_name == "auto" and gpus > 1):
        strategy = tf.distribute.MirroredStrategy()
    elif strategy_name in ("auto", "default"):
        strategy = tf.distribute.get_strategy()
    else:  # the config validates the name
        raise DermtoolError(f"unknown train.strategy {strategy_name!r}")

    use_mixed = mixed_precision == "on" or (mixed_precision == "auto" and gpus > 0)
    kind = type(strategy).__name__
    where = f"{gpus} GPU(s)" if gpus else "CPU"
    description = f"{where}, {kind} ({strategy.num_replicas_in_sync} replica(s)), " + (
        "mixed_float16" if use_mixed else "float32")
    return Devices(strategy=strategy, mixed_precision=use_mixed, gpus=gpus, description=description)


@contextlib.contextmanager
def precision_policy(mixed: bool) -> Iterator[None]:
    """Set the global Keras dtype policy for the block (``mixed_float16`` or ``float32``), then restore it."""
    import tf_keras as keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
