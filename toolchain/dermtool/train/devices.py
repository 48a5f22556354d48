"""Where training runs: the distribution strategy and the mixed-precision policy.

- ``train.strategy``: ``auto`` = MirroredStrategy over all GPUs when there are several, otherwise the
  default strategy (one GPU, or the CPU); ``default`` = the default strategy; ``mirrored`` =
  ``tf.distribute.MirroredStrategy`` (all local GPUs); ``multi_worker`` =
  ``tf.distribute.MultiWorkerMirroredStrategy`` (reads the cluster from the ``TF_CONFIG`` variable).
  Every machine runs the same ``dermtool train`` command with its own ``TF_CONFIG``; ``train.batch_size``
  is the global batch, split across all replicas; the gradients are summed by TensorFlow's collective
  operations (a ring all-reduce over gRPC between CPUs). The chief (task ``chief``, or worker 0 without
  one) writes the run folder; the other workers train in a private temporary folder, removed at the end
  (see :func:`dermtool.train.trainer.train`).
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

    def _cluster(self) -> tuple[dict[str, Any], str | None, int | None]:
        """The cluster (task type -> addresses), this task's type and index; ``({}, None, None)`` unless
        multi-worker."""
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is None or not getattr(resolver, "cluster_spec", None):
            return {}, None, None
        return resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id

    @property
    def is_chief(self) -> bool:
        """True on the worker that writes the run folder (the only one unless multi-worker)."""
        cluster, task_type, task_id = self._cluster()
        return is_chief_task(cluster, task_type, task_id)

    @property
    def workers(self) -> int:
        """How many processes train together: the chief and workers of the cluster (1 unless multi-worker)."""
        cluster = self._cluster()[0]
        return max(1, sum(len(cluster.get(kind, ())) for kind in ("chief", "worker")))

    @property
    def task(self) -> str:
        """This process in the cluster, e.g. ``"worker 1"`` (``"chief"`` outside a multi-worker run)."""
        _, task_type, task_id = self._cluster()
        return "chief" if task_type is None else f"{task_type} {task_id}"


def is_chief_task(cluster: dict[str, Any], task_type: str | None, task_id: int | None) -> bool:
    """Whether a task writes the run folder: the ``chief`` task, or worker 0 of a cluster without one
    (TensorFlow's rule); True outside a cluster."""
    if task_type is None:
        return True
    return task_type == "chief" or ("chief" not in cluster and task_type == "worker" and int(task_id or 0) == 0)


def writes_run_folder(strategy_name: str) -> bool:
    """Whether this process writes the run folder, from ``train.strategy`` and ``TF_CONFIG`` alone (no
    TensorFlow import): False only on a non-chief task of a multi-worker run."""
    if strategy_name != "multi_worker":
        return True
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task = tf_config.get("task") or {}
        return is_chief_task(tf_config.get("cluster") or {}, task.get("type"), task.get("index"))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return True  # choose_devices refuses a malformed TF_CONFIG


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
