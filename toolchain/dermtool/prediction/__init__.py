"""Prediction: one calibrated answer per photo or per lesion, and the lesion check that guards it.

- :mod:`dermtool.prediction.predictor`: :class:`~dermtool.prediction.predictor.Predictor` (run folder or
  .tflite) and the outcome rule (``not_a_lesion`` > ``refer`` > ``uncertain`` > ``benign``).
- :mod:`dermtool.prediction.lesion`: several photos of one lesion, one answer
  (:func:`~dermtool.prediction.lesion.predict_lesion`), combined by :mod:`dermtool.prediction.multi_photo`'s rule.
- :mod:`dermtool.prediction.lesion_check`: the model's second head behind ``not_a_lesion`` ("no skin lesion in
  this photo"), carried inside the exported .tflite; :mod:`dermtool.prediction.lesion_check_fit` fits it
  (``dermtool lesion-check RUN``) on lesions against :mod:`dermtool.prediction.non_lesion`'s generated images
  and :mod:`dermtool.prediction.skin_crops`' lesion-free skin.

Why the answer is what it is (Grad-CAM) lives in :mod:`dermtool.explain`.
"""
