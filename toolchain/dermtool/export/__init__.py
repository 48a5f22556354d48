"""Export a trained run folder as a small, calibrated, on-device TFLite classifier.

- :mod:`dermtool.export.tflite`: :func:`~dermtool.export.tflite.export_model`, the whole export
  (temperature folding, optional pruning / quantization-aware fine-tuning, conversion in a named mode,
  metadata, accuracy gate, model card), written atomically, as set by one
  :class:`~dermtool.export.tflite.ExportOptions`.
- :mod:`dermtool.export.convert`: the TFLite converter settings of each named mode.
- :mod:`dermtool.export.calibration_data`: the run's images per split, and the stratified representative set.
- :mod:`dermtool.export.gate`: the accuracy gate (exported model against the float model).
- :mod:`dermtool.export.metadata`: TFLite metadata (written by dermtool's own populator, read back in pure Python).
- :mod:`dermtool.export.model_card`: ``model_card.json`` and ``model_card.md`` beside the model.

Importing this package imports no TensorFlow (the runtime reads metadata through it).
"""
