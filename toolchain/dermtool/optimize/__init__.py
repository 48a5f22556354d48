"""Model optimisation before export (tensorflow-model-optimization on tf_keras models).

- :mod:`dermtool.optimize.prune`: magnitude pruning fine-tune (``prune_finetune``) and ``sparsity_report``.
- :mod:`dermtool.optimize.qat`: quantization-aware fine-tune (``quantization_aware_finetune``), also the
  prune-preserving variant for a pruned model.
- :mod:`dermtool.optimize.common`: the checks and training loop both share.

TF-MOT works only on Keras 2 models (``tf_keras``); ``import dermtool`` sets ``TF_USE_LEGACY_KERAS=1``.
"""
