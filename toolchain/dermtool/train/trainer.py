"""Two-phase transfer learning of a mobile CNN on labelled skin images, into a run folder.

    run = train(load_config("configs/ham10000_cpu.toml"), "runs/ham10000_cpu")

1. Data (:mod:`dermtool.train.data`): the labelled folder, a lesion-grouped split (or a given one),
   every image decoded once into memory with the model's input spec.
2. Phase "head": the backbone frozen, the classifier head trained for ``train.head_epochs`` at
   ``train.head_learning_rate``.
3. Phase "finetune": the backbone from block ``train.finetune_from_block`` on (0 = all of it) and the
   head, for ``train.finetune_epochs`` with a linear warm-up then a cosine decay from
   ``train.finetune_learning_rate`` to zero (AdamW in both phases; :mod:`dermtool.train.schedule`).
4. After every epoch: the validation split predicted (no augmentation), its balanced accuracy decides the
   best epoch; history.csv, TensorBoard scalars and a checkpoint (:mod:`dermtool.train.checkpoints`)
   are written. ``resume=True`` continues an interrupted run from its last checkpoint.
5. At the end: the best epoch's weights, temperature scaling on validation, the contract metrics on
   validation and test, referral thresholds, plots, and ``model.keras`` (float32).

Class imbalance (``train.class_balance``): "weights" multiplies each example's loss by its class weight
(focal loss: the weights become its alpha), "sampling" draws every class equally often, "none" does
neither. Loss: cross-entropy or focal, both with label smoothing (:mod:`dermtool.train.losses`).

The loop is a custom one (``strategy.run`` on a distributed dataset) so that the time spent waiting for
the input pipeline can be measured exactly (``next()`` against the train step) and resume restores
the optimiser state precisely.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dermtool import DermtoolError, metrics
from dermtool.config import Config, validate
from dermtool.data.pipeline import make_dataset
from dermtool.data.split import read_split_csv, write_split_csv
from dermtool.io_utils import atomic_path, atomic_write_json, atomic_write_text
from dermtool.models import registry
from dermtool.run import (CHECKPOINTS_DIR, CONFIG_FILE, CONFUSION_MATRIX_FILE, INPUT_SPEC_FILE, LABELS_FILE,
                          LOGS_DIR, METRICS_FILE, MODEL_FILE, SPLIT_FILE, TRAINING_CURVES_FILE, LogitsPredictor,
                          RunFolder)
from dermtool.train.checkpoints import RunState, prepare_run_folder, remove_checkpoints_except
from dermtool.train.data import (effective_class_weights, prepare_training_data, sampling_shares,
                                 source_balanced_accuracies)
from dermtool.train.devices import choose_devices, precision_policy
from dermtool.train.history import EpochRecord, read_history, write_history
from dermtool.train.losses import make_loss
from dermtool.train.plots import plot_confusion_matrix, plot_training_curves
from dermtool.train.report import OutOfScope, SplitStrata, final_metrics
from dermtool.train.schedule import build_optimizer, current_learning_rate, make_optimizer, make_warmup_cosine

LOG_FILE = "train.log"
PHASES = ("head", "finetune")


class RunLog:
    """Lines appended to RUN/train.log, and echoed to stderr (between progress bars) unless quiet."""

    def __init__(self, path: Path, echo: bool) -> None:
        self.path = path
        self.echo = echo

    def __call__(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp}  {message}\n")
        if self.echo:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)


@dataclass
class Phase:
    """The optimiser and compiled train step of one phase."""

    name: str
    optimizer: Any
    step: Callable[[Any], Any] | None = None  # traced lazily for the dataset's element spec


def worker_folder(run_dir: Path, resume: bool, task: str = "worker") -> Path:
    """A private folder for a non-chief worker of a multi-worker run (only the chief writes RUN).

    Every worker runs the whole loop, checkpoint writes included (as TensorFlow's multi-worker guide
    asks), so the others write into a temporary folder, which :func:`train` removes at the end. To resume,
    a worker starts from a copy of the chief's run folder, which it must see at the same path (a shared
    filesystem, or a copy made beforehand); the chief's half-written files (``.NAME.*``) are left out.
    """
    import shutil
    import tempfile

    if resume and not (run_dir / CONFIG_FILE).is_file():
        raise DermtoolError(f"{task} cannot resume: the chief's run folder {run_dir} is not readable here; put "
                            f"--out on a filesystem every worker shares, or copy the chief's folder to "
                            f"{run_dir} on this machine first")
    folder = Path(tempfile.mkdtemp(prefix="dermtool-worker-"))
    if resume:
        shutil.copytree(run_dir, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns(LOGS_DIR, ".*"))
    return folder


def epoch_seed(seed: int, epoch: int) -> int:
    """The data-order and augmentation seed of a (1-based) epoch: independent of interruptions."""
    return int(seed) * 1_000_003 + int(epoch)


def epoch_plan(config: Config) -> list[str]:
    """The phase of every epoch, in order: ``["head"] * head_epochs + ["finetune"] * finetune_epochs``."""
    return ["head"] * config.train.head_epochs + ["finetune"] * config.train.finetune_epochs


def train(
    config: Config,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    split_csv: str | Path | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
) -> RunFolder | None:
    """Train ``config`` into the run folder ``out_dir`` and return it as a :class:`RunFolder`.

    ``resume`` continues an interrupted run (the same resolved configuration is required);
    ``overwrite`` replaces a previous run's files; without either, a non-empty folder is refused.
    ``split_csv`` (or ``config.data.split_csv``) fixes the split; ``progress=False`` prints nothing.
    ``on_epoch_end`` is called with each epoch's record after its checkpoint is written (a hook for
    tests and notebooks; an exception raised there stops training, resumable from that epoch).

    Multi-worker (``train.strategy = "multi_worker"``, one process per machine, each with its own
    ``TF_CONFIG``): only the chief writes ``out_dir`` and returns it. Every other worker trains in a
    private temporary folder (:func:`worker_folder`), removed when it returns or fails, and returns None.
    Every worker logs fingerprints (:func:`weights_fingerprint`) of its weights after the last epoch and
    of the best epoch's weights (those of ``model.keras``): they are the same on all of them.
    """
    config = copy.deepcopy(config)
    if split_csv:
        config.data.split_csv = str(split_csv)
    validate(config, "training configuration")
    run_dir = Path(out_dir)

    devices = choose_devices(config.train.strategy, config.train.mixed_precision)
    private = None
    if not devices.is_chief:
        private = run_dir = worker_folder(Path(out_dir), resume, devices.task)  # empty, or a copy to resume
        overwrite = False
    try:
        state = prepare_run_folder(run_dir, config.to_toml(), resume=resume, overwrite=overwrite)
        log = RunLog(run_dir / LOG_FILE, echo=progress)
        where = run_dir if private is None else (
            f"the private folder {private} as {devices.task} (the chief writes {out_dir})")
        if state is None:
            state = RunState(seed=config.train.seed)
            log(f"training into {where} on {devices.description}")
        else:
            log(f"resuming {where} after epoch {state.completed_epochs} on {devices.description}")
        try:
            return _Trainer(config, run_dir, state, devices, log, progress, on_epoch_end).run()
        except KeyboardInterrupt:
            saved = RunState.read(run_dir)
            log(f"interrupted; {saved.completed_epochs if saved else 0} epoch(s) saved: continue with "
                f"`dermtool train --config ... --out {out_dir} --resume`")
            raise
    finally:
        if private is not None:
            import shutil

            shutil.rmtree(private, ignore_errors=True)


class _Trainer:
    """One training run; the steps of :func:`train` as methods sharing the run's state."""

    def __init__(self, config: Config, run_dir: Path, state: RunState, devices, log: RunLog, progress: bool,
                 on_epoch_end) -> None:
        self.config = config
        self.run_dir = run_dir
        self.state = state
        self.devices = devices
        self.log = log
        self.progress = progress
        self.on_epoch_end = on_epoch_end
        self.plan = epoch_plan(config)

    # ---------------------------------------------------------------------------------------- set-up
    def run(self) -> RunFolder | None:
        import tf_keras as keras

        keras.utils.set_random_seed(self.config.train.seed)
        self.spec = registry.input_spec(self.config.model, self.config.data)
        self._prepare_data()
        if self.state.completed_epochs < len(self.plan):
            with precision_policy(self.devices.mixed_precision):
                self._build_model()
                self._train_epochs()
        return self._finish()

    def _prepare_data(self) -> None:
        split_path = self.run_dir / SPLIT_FILE
        resumed_rows = read_split_csv(split_path) if split_path.is_file() else None
        data = prepare_training_data(self.config, self.spec, split_rows=resumed_rows, progress=self.progress,
                                     log=self.log)
        labels_path = self.run_dir / LABELS_FILE
        if labels_path.is_file():
            previous = [line for line in labels_path.read_text(encoding="utf-8").splitlines() if line]
            if previous != data.labels:
                raise DermtoolError(f"cannot resume: the data's classes {data.labels} differ from the run's "
                                    f"{previous}; start over with --overwrite")
        if resumed_rows is None:
            write_split_csv(data.rows, split_path)
        atomic_write_text(labels_path, "\n".join(data.labels) + "\n")
        atomic_write_json(self.run_dir / INPUT_SPEC_FILE, self.spec.to_dict())
        counts = {name: len(split) for name, split in data.splits.items()}
        limited = (f" (limited from {data.train_limited_from} by data.max_images_per_class)"
                   if data.train_limited_from else "")
        self.log(f"images: {counts['train']} train{limited}, {counts['val']} val, {counts['test']} test; "
                 f"classes: {', '.join(data.labels)}; {len(data.skipped)} skipped")
        if len(data.source_names) > 1:
            for index, name in enumerate(data.source_names):
                per_split = {split: int((images.sources == index).sum()) for split, images in data.splits.items()}
                self.log(f"source {name} ({data.source_kinds[index]}): {per_split['train']} train, "
                         f"{per_split['val']} val, {per_split['test']} test")
        self.data = data
        images_per_epoch = self.config.train.images_per_epoch or counts["train"]
        self.steps_per_epoch = max(1, math.ceil(images_per_epoch / self.config.train.batch_size))

    def _build_model(self) -> None:
        import tf_keras as keras

        config = self.config
        model_config = config.model
        if self.state.checkpoint:
            model_config = replace(model_config, weights="none")  # the checkpoint holds every weight
        with self.devices.strategy.scope():
            self.model = registry.build_classifier(model_config, self.data.num_classes, config.data.image_size)
            self.logits_model = keras.Model(self.model.inputs, self.model.get_layer("logits").output,
                                            name="logits_model")
            if not self.state.checkpoint and model_config.weights.strip().lower() in ("imagenet", "none"):
                zero_classifier_head(self.model)
        self.predict_logits = LogitsPredictor(self.logits_model)
        weights = None
        if config.train.class_balance == "weights":
            weights = effective_class_weights(self.data)  # the classes as batches see them (source shares)
            self.log("class weights: " + ", ".join(f"{label} {weight:.2f}"
                                                    for label, weight in zip(self.data.labels, weights)))
        focal_alpha = weights if config.train.loss == "focal" else None
        self.example_weights = weights if config.train.loss == "crossentropy" else None
        self.loss_function = make_loss(config.train.loss, config.train.label_smoothing, config.train.focal_gamma,
                                       None if focal_alpha is None else focal_alpha.tolist())
    # ---------------------------------------------------------------------------------------- phases
    def _start_phase(self, name: str) -> Phase:
        train_config = self.config.train
        if name == "head":
            registry.freeze_backbone(self.model)
            learning_rate: Any = train_config.head_learning_rate
        else:
            registry.set_trainable(self.model, train_config.finetune_from_block,
                                   train_batch_norm=train_config.finetune_batch_norm == "train")
            total = train_config.finetune_epochs * self.steps_per_epoch
            warmup = int(round(train_config.warmup_fraction * total))
            learning_rate = make_warmup_cosine(train_config.finetune_learning_rate, total, warmup)
        variables = self.logits_model.trainable_variables
        with self.devices.strategy.scope():
            optimizer = make_optimizer(learning_rate, train_config.weight_decay, self.devices.mixed_precision)
            build_optimizer(optimizer, variables)
        trainable = sum(int(np.prod(variable.shape)) for variable in variables)
        self.log(f"phase {name}: {trainable:,} trainable parameters")
        return Phase(name=name, optimizer=optimizer)

    def _make_train_step(self, phase: Phase, element_spec):
        import tensorflow as tf

        strategy = self.devices.strategy
        model = self.logits_model
        optimizer = phase.optimizer
        variables = model.trainable_variables
        loss_function = self.loss_function
        mixed = self.devices.mixed_precision
        example_weights = None if self.example_weights is None else tf.constant(self.example_weights)

        def replica_step(images, one_hot):
            with tf.GradientTape() as tape:
                logits = tf.cast(model(images, training=True), tf.float32)
                per_example = loss_function(one_hot, logits)
                if example_weights is not None:
                    per_example = per_example * tf.gather(example_weights, tf.argmax(one_hot, axis=-1))
                loss = tf.nn.compute_average_loss(per_example)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                scaled_loss = optimizer.get_scaled_loss(loss) if mixed else loss
            gradients = tape.gradient(scaled_loss, variables)
            if mixed:
                gradients = optimizer.get_unscaled_gradients(gradients)
            optimizer.apply_gradients(zip(gradients, variables))
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(one_hot, -1)), tf.float32))
            count = tf.cast(tf.shape(one_hot)[0], tf.float32)
            return tf.reduce_sum(per_example), correct, count

        @tf.function(input_signature=[element_spec])
        def train_step(batch):
            results = strategy.run(replica_step, args=batch)
            return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in results)

        return train_step

    def _restore(self, phase: Phase) -> None:
        """Load the last checkpoint: weights always, the optimiser when the phase goes on."""
        import tensorflow as tf

        prefix = str(self.run_dir / CHECKPOINTS_DIR / self.state.checkpoint)
        if self.state.phase == phase.name:
            tf.train.Checkpoint(model=self.model, optimizer=phase.optimizer).read(prefix).assert_existing_objects_matched()
        else:
            tf.train.Checkpoint(model=self.model).read(prefix).expect_partial()
        self.log(f"restored {self.state.checkpoint} (phase {self.state.phase})")

    # ---------------------------------------------------------------------------------------- the loop
    def _train_epochs(self) -> None:
        import tensorflow as tf

        history = read_history(self.run_dir)[: self.state.completed_epochs]
        val = self.data.splits["val"]
        self.val_dataset = make_dataset(val.images, val.labels, self.data.num_classes,
                                        self.config.train.batch_size, training=False, augment=None,
                                        spec=self.spec)
        summary_writer = tf.summary.create_file_writer(str(self.run_dir / LOGS_DIR))
        phase: Phase | None = None
        first_index = self.state.completed_epochs
        for index in range(first_index, len(self.plan)):
            epoch = index + 1
            if phase is None or phase.name != self.plan[index]:
                phase = self._start_phase(self.plan[index])
                if index == first_index and self.state.checkpoint:
                    self._restore(phase)
            record = self._train_one_epoch(phase, epoch)
            history.append(record)
            self._end_epoch(phase, record, history, summary_writer)
        summary_writer.close()
        if self.devices.workers > 1:
            self.log(f"weights after epoch {len(self.plan)}: fingerprint {weights_fingerprint(self.model)} "
                     f"(the same on every worker)")

    def _train_one_epoch(self, phase: Phase, epoch: int) -> EpochRecord:
        from tqdm import tqdm

        config = self.config
        train_split = self.data.splits["train"]
        dataset = make_dataset(train_split.images, train_split.labels, self.data.num_classes,
                               config.train.batch_size, training=True, augment=config.augment, spec=self.spec,
                               seed=epoch_seed(config.train.seed, epoch),
                               class_balanced_sampling=config.train.class_balance == "sampling",
                               source_ids=train_split.sources, source_shares=sampling_shares(self.data),
                               images_per_epoch=config.train.images_per_epoch)
        distributed = self.devices.strategy.experimental_distribute_dataset(dataset)
        if phase.step is None:
            phase.step = self._make_train_step(phase, distributed.element_spec)
        loss_sum = correct = seen = 0.0
        waiting = 0.0
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch}/{len(self.plan)} {phase.name}", unit="batch",
                   file=sys.stderr, leave=False, dynamic_ncols=True, disable=None if self.progress else True)
        iterator = iter(distributed)
        started = time.perf_counter()
        with bar:
            while True:
                before = time.perf_counter()
                try:
                    batch = next(iterator)
                except StopIteration:
                    waiting += time.perf_counter() - before
                    break
                waiting += time.perf_counter() - before
                loss_total, correct_count, count = phase.step(batch)
                loss_sum += float(loss_total)  # also synchronises, so the step's time is its own
                correct += float(correct_count)
                seen += float(count)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
        seconds = time.perf_counter() - started
        if seen == 0:
            raise DermtoolError("the training dataset yielded no batches")

        val_labels = self.data.splits["val"].labels
        val_logits = self.predict_logits(self.val_dataset, len(val_labels))
        val_probabilities = metrics.softmax(val_logits)
        val_metrics = metrics.classification_metrics(val_labels, val_probabilities, self.data.labels)
        selection_score = float(val_metrics["balanced_accuracy"])
        if len(self.data.source_names) > 1:
            # several sources: the best epoch is the one best on every source on average, not on the largest
            scores = source_balanced_accuracies(self.data.splits["val"], val_probabilities, self.data)
            self.log("val balanced accuracy per source: "
                     + ", ".join(f"{name} {score:.3f}" for name, score in scores.items()))
            selection_score = float(np.mean(list(scores.values())))
        true_probabilities = val_probabilities[np.arange(len(val_labels)), val_labels]
        val_loss = float(-np.mean(np.log(np.clip(true_probabilities, 1e-12, 1.0))))
        return EpochRecord(
            epoch=epoch, phase=phase.name, loss=loss_sum / seen, train_accuracy=correct / seen,
            val_loss=val_loss, val_balanced_accuracy=selection_score,
            val_accuracy=float(val_metrics["accuracy"]), learning_rate=current_learning_rate(phase.optimizer),
            seconds=seconds, images_per_second=seen / seconds if seconds > 0 else 0.0,
            input_wait_fraction=waiting / seconds if seconds > 0 else 0.0,
        )

    def _end_epoch(self, phase: Phase, record: EpochRecord, history: list[EpochRecord], summary_writer) -> None:
        import tensorflow as tf

        state = self.state
        checkpoints = self.run_dir / CHECKPOINTS_DIR
        checkpoints.mkdir(parents=True, exist_ok=True)
        prefix = f"epoch-{record.epoch}"
        tf.train.Checkpoint(model=self.model, optimizer=phase.optimizer).write(str(checkpoints / prefix))
        is_best = record.val_balanced_accuracy > state.best_score
        if is_best:
            best_prefix = f"best-{record.epoch}"
            tf.train.Checkpoint(model=self.model).write(str(checkpoints / best_prefix))
            state.best_epoch, state.best_score, state.best_checkpoint = (
                record.epoch, record.val_balanced_accuracy, best_prefix)
        state.completed_epochs, state.phase, state.checkpoint = record.epoch, phase.name, prefix
        write_history(self.run_dir, history)
        state.write(self.run_dir)
        remove_checkpoints_except(self.run_dir, {state.checkpoint, state.best_checkpoint})

        write_scalars(summary_writer, record.epoch, {
            "train/loss": record.loss, "train/accuracy": record.train_accuracy,
            "train/learning_rate": record.learning_rate, "train/images_per_second": record.images_per_second,
            "train/input_wait_fraction": record.input_wait_fraction, "val/loss": record.val_loss,
            "val/balanced_accuracy": record.val_balanced_accuracy, "val/accuracy": record.val_accuracy,
        })
        summary_writer.flush()

        self.log(
            f"epoch {record.epoch}/{len(self.plan)} {record.phase}: loss {record.loss:.4f}, "
            f"train acc {record.train_accuracy:.3f} | val balanced acc {record.val_balanced_accuracy:.3f}"
            f"{' (best)' if is_best else ''}, val acc {record.val_accuracy:.3f}, val loss {record.val_loss:.4f} | "
            f"{record.seconds:.0f} s, {record.images_per_second:.1f} img/s, "
            f"input wait {100 * record.input_wait_fraction:.0f}%, lr {record.learning_rate:.2e}"
        )
        if self.on_epoch_end is not None:
            self.on_epoch_end(record)

    # ---------------------------------------------------------------------------------------- the end
    def _finish(self) -> RunFolder | None:
        """Calibrate, measure and save the best epoch (the chief); a non-chief worker only logs the
        fingerprint of its best weights and returns None."""
        import tensorflow as tf
        import tf_keras as keras

        state = self.state
        if not state.best_checkpoint:
            raise DermtoolError(f"{self.run_dir}: no checkpoint of a best epoch to finish from; "
                                f"start over with --overwrite")
        with precision_policy(False):  # the saved model is float32 whatever the training precision
            model = registry.build_classifier(replace(self.config.model, weights="none"), self.data.num_classes,
                                              self.config.data.image_size)
        tf.train.Checkpoint(model=model).read(
            str(self.run_dir / CHECKPOINTS_DIR / state.best_checkpoint)).assert_existing_objects_matched()
        if self.devices.workers > 1:
            self.log(f"weights of best epoch {state.best_epoch}: fingerprint {weights_fingerprint(model)} "
                     f"(the same on every worker)")
        if not self.devices.is_chief:
            self.log(f"{self.devices.task} done: the chief writes the run folder")
            return None
        predictor = LogitsPredictor(keras.Model(model.inputs, model.get_layer("logits").output))
        logits = {}
        for name in ("val", "test"):
            split = self.data.splits[name]
            if len(split) == 0:
                continue
            dataset = make_dataset(split.images, split.labels, self.data.num_classes,
                                   self.config.train.batch_size, training=False, augment=None, spec=self.spec)
            logits[name] = (split.labels, predictor(dataset, len(split)))

        history = read_history(self.run_dir)
        group_of = {row.image_id: row.group for row in self.data.rows}
        strata = {name: SplitStrata(split.sources, split.skin_types, self.data.source_names, self.data.source_kinds,
                                    split.skin_tones, [group_of.get(image_id, image_id) for image_id in split.image_ids])
                  for name, split in self.data.splits.items() if name in logits and split.sources is not None}
        aside = None
        if self.data.out_of_scope is not None and len(self.data.out_of_scope):
            extra = self.data.out_of_scope
            dataset = make_dataset(extra.images, np.zeros(len(extra), np.int32), self.data.num_classes,
                                   self.config.train.batch_size, training=False, augment=None, spec=self.spec)
            aside = OutOfScope(extra.sources, extra.original_labels, predictor(dataset, len(extra)))
        result = final_metrics(self.data.labels, logits, strata or None, aside)
        result["best_epoch"] = state.best_epoch
        result["epochs"] = len(history)
        result["skipped_images"] = self.data.skipped
        result["throughput"] = throughput_by_phase(history)
        total_seconds = sum(record.seconds for record in history)
        result["input_wait_fraction"] = (
            sum(record.input_wait_fraction * record.seconds for record in history) / total_seconds
            if total_seconds else 0.0)
        result["training_seconds"] = total_seconds
        result["train_images"] = len(self.data.splits["train"])

        with atomic_path(self.run_dir / MODEL_FILE) as temporary:
            model.save(temporary)
        if result["test"] is not None:
            matrix = result["test"]["confusion_matrix"]
            plot_confusion_matrix(matrix["matrix"], matrix["labels"], self.run_dir / CONFUSION_MATRIX_FILE,
                                  title=f"Test confusion matrix (n={result['test']['n']}, calibrated)")
        plot_training_curves([vars(record) for record in history], self.run_dir / TRAINING_CURVES_FILE,
                             best_epoch=state.best_epoch)
        atomic_write_json(self.run_dir / METRICS_FILE, result)  # last: its presence marks a finished run

        summary = f"best epoch {state.best_epoch}: val balanced accuracy {result['val']['balanced_accuracy']:.3f}"
        if result["test"] is not None:
            summary += f", test balanced accuracy {result['test']['balanced_accuracy']:.3f}"
        self.log(f"{summary}; temperature {result['temperature']:.3f}; run folder {self.run_dir}")
        return RunFolder(self.run_dir)


def zero_classifier_head(model) -> None:
    """Start the new "logits" layer at zero (as Big Transfer does): every class at 1/C, initial loss ln C.

    A randomly initialised head on 1280 pooled ReLU6 features starts with logits of a few units and a
    loss well above ln C, which the first (head-only) epoch then spends undoing.
    """
    layer = model.get_layer("logits")
    layer.set_weights([np.zeros(weight.shape, dtype=weight.dtype.as_numpy_dtype) for weight in layer.weights])


def weights_fingerprint(model) -> str:
    """16 hex digits of the SHA-256 of a model's weights (shapes and float32 values, in order): equal
    fingerprints mean equal weights, e.g. on the workers of a multi-worker run, or a run's ``model.keras``
    loaded back."""
    import hashlib

    digest = hashlib.sha256()
    for weights in model.get_weights():
        values = np.ascontiguousarray(weights, dtype=np.float32)
        digest.update(repr(values.shape).encode())
        digest.update(values.tobytes())
    return digest.hexdigest()[:16]


def write_scalars(writer, step: int, values: dict[str, float]) -> None:
    """TensorBoard scalars without the tensorboard package: ``tf.summary.write`` with the "scalars"
    plugin's metadata (what ``tf.summary.scalar`` writes when TensorBoard is installed)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()
    with writer.as_default(step=step):
        for tag, value in values.items():
            tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=metadata)


def throughput_by_phase(history: list[EpochRecord]) -> dict[str, float]:
    """Training images/s per phase, from the phase's epochs after its first (which pays for tracing)
    when there are several, else from its only epoch."""
    result = {}
    for phase in PHASES:
        records = [record for record in history if record.phase == phase]
        if not records:
            continue
        steady = records[1:] or records
        seconds = sum(record.seconds for record in steady)
        images = sum(record.images_per_second * record.seconds for record in steady)
        result[phase] = images / seconds if seconds else 0.0
    return result
