"""Training: two-phase transfer learning (head, then fine-tuning), calibration and the run folder.

The public entry point is :func:`dermtool.train.trainer.train`; importing this package imports no
TensorFlow (the trainer imports it inside its functions).
"""
