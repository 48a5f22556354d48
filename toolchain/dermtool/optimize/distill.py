"""Self-distillation for the pruning and QAT fine-tunes: the student learns the float model's answers.

The point of an int8 (or pruned) export is to give the *same* answers as the float model, smaller and
faster. Fine-tuning the quantized student on the hard labels instead re-opens training: it moves decisions
that the float model had settled, so agreement falls even when accuracy holds. Distillation (Hinton, Vinyals and Dean 2015, "Distilling the knowledge in a neural network")
replaces the target by the float teacher's softmax on the same augmented batch, and the loss by the
Kullback-Leibler divergence ``KL(teacher || student)``. The labels are still used, for the reported accuracy.

:func:`distillation_model` wraps a student and a teacher in a Keras model whose ``train_step`` does this;
``fit`` it like any model, then use the student. Pruning callbacks work on it (they find the pruning
wrappers recursively).
"""

from __future__ import annotations

from typing import Any


def distillation_model(student: Any, teacher: Any) -> Any:
    """A trainable Keras model whose loss is ``KL(teacher(x) || student(x))``; its weights are the student's.

    Compile it with an optimizer only (the loss is fixed); ``fit`` on ``(images, one-hot labels)``. Metrics:
    ``accuracy`` (student against the labels) and ``agreement`` (student top-1 == teacher top-1).
    """
    import tensorflow as tf
    import tf_keras as keras

    class Distiller(keras.Model):
        def __init__(self, student_model: Any, teacher_model: Any) -> None:
            super().__init__()
            self.student = student_model
            self.teacher = teacher_model
            self.divergence = keras.losses.KLDivergence()
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.accuracy_tracker = keras.metrics.CategoricalAccuracy(name="accuracy")
            self.agreement_tracker = keras.metrics.Mean(name="agreement")

        @property
        def metrics(self) -> list[Any]:
            return [self.loss_tracker, self.accuracy_tracker, self.agreement_tracker]

        def call(self, inputs: Any, training: bool = False) -> Any:
            return self.student(inputs, training=training)

        def train_step(self, data: Any) -> dict[str, Any]:
            images, labels = data[0], data[1]
            teacher_probabilities = self.teacher(images, training=False)
            with tf.GradientTape() as tape:
                student_probabilities = self.student(images, training=True)
                loss = self.divergence(teacher_probabilities, student_probabilities)
                if self.student.losses:
                    loss += tf.add_n(self.student.losses)
            variables = self.student.trainable_variables  # the teacher is never updated (nor modified)
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return self._record(loss, labels, teacher_probabilities, student_probabilities)

        def test_step(self, data: Any) -> dict[str, Any]:
            images, labels = data[0], data[1]
            teacher_probabilities = self.teacher(images, training=False)
            student_probabilities = self.student(images, training=False)
            loss = self.divergence(teacher_probabilities, student_probabilities)
            return self._record(loss, labels, teacher_probabilities, student_probabilities)

        def _record(self, loss: Any, labels: Any, teacher_probabilities: Any, student_probabilities: Any) -> dict:
            self.loss_tracker.update_state(loss)
            self.accuracy_tracker.update_state(labels, student_probabilities)
            agree = tf.equal(tf.argmax(student_probabilities, -1), tf.argmax(teacher_probabilities, -1))
            self.agreement_tracker.update_state(tf.cast(agree, tf.float32))
            return {metric.name: metric.result() for metric in self.metrics}

    return Distiller(student, teacher)


__all__ = ["distillation_model"]
