"""A tiny classifier with the layer pattern of the real ones, for fast QAT and pruning tests.

``build_tiny_classifier`` makes a flat functional tf_keras model with the interface's layer names ("image",
"pooled", "logits", "probabilities") and the building blocks of EfficientNet-Lite / MobileNetV2
(conv + BatchNorm + ReLU6, depthwise conv, 1x1 projection, residual Add, head conv), about 3k weights
instead of 3.4M, so fine-tuning it takes seconds. ``train_tiny_classifier`` fits it briefly on real
images so that its predictions are not constant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_tiny_classifier(num_classes: int = 7, image_size: int = 32, seed: int = 0):
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(image)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="block1_dwconv")(x)
    y = layers.BatchNormalization(name="block1_bn")(y)
    y = layers.ReLU(6.0, name="block1_activation")(y)
    y = layers.Conv2D(16, 1, use_bias=False, name="block1_project_conv")(y)
    y = layers.BatchNormalization(name="block1_project_bn")(y)
    x = layers.Add(name="block1_add")([x, y])
    x = layers.Conv2D(48, 3, strides=2, padding="same", use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_activation")(x)
    x = layers.GlobalAveragePooling2D(name="pooled")(x)
    x = layers.Dropout(0.1, name="classifier_dropout")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    probabilities = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(image, probabilities, name="tiny_classifier")


def train_tiny_classifier(model, images_normalised: np.ndarray, labels: np.ndarray, epochs: int = 15):
    """A few epochs of Adam on (normalised images, integer labels); returns the model."""
    import tf_keras as keras

    num_classes = model.output_shape[-1]
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy")
    model.fit(images_normalised, keras.utils.to_categorical(labels, num_classes), epochs=epochs, batch_size=16,
              verbose=0, shuffle=True)
    return model


def conv_and_dense_weight_zero_fraction(model_path: Path) -> float:
    """Zero fraction of the weights of the CONV_2D and FULLY_CONNECTED ops of a .tflite (the prunable ones)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(model_path),
        # without XNNPACK the constant weight tensors stay readable
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    zeros = total = 0
    for operator in interpreter._get_ops_details():  # noqa: SLF001 - the only way to map ops to weights
        if operator["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            weights = interpreter.get_tensor(operator["inputs"][1])
            zeros += int(np.sum(weights == 0))
            total += weights.size
    return zeros / total
