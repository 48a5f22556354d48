"""Ask, then look: the health worker's answers fused with the image model's probabilities.

- :mod:`dermtool.fusion.questionnaire`: the questions, their answers, and how each is read.
- :mod:`dermtool.fusion.model`: the portable fusion (:class:`Fusion`): fit, apply, JSON.
- :mod:`dermtool.fusion.fitting`: fitting and reporting it for a run (``dermtool fuse``).
- :mod:`dermtool.fusion.explain`: how much the answers moved the malignant probability, in words.
"""
