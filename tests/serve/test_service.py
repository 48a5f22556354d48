"""The words the apps take from dermtool.serve.service: the referral message from the model's own referral
classes, and what the model was trained on (never calling a phone photo dermatoscopic)."""

from __future__ import annotations

from dermtool.prediction.predictor import CLASS_NAMES
from dermtool.serve.service import OUTCOME_GUIDANCE, describe_training_photos, name_list, outcome_guidance


def test_referral_message_names_every_referral_class_of_the_model() -> None:
    four = outcome_guidance(["mel", "bcc", "akiec", "scc"])["refer"]["message"]
    for label in ("mel", "bcc", "akiec", "scc"):
        assert CLASS_NAMES[label] in four
    assert "(melanoma, basal cell carcinoma, actinic keratosis / intraepithelial carcinoma or squamous cell " \
           "carcinoma)" in four
    only_melanoma = outcome_guidance(["mel"])["refer"]["message"]
    assert "(melanoma)" in only_melanoma and "basal" not in only_melanoma
    assert "{classes}" in OUTCOME_GUIDANCE["refer"]["message"]  # the template itself is left unformatted
    assert set(outcome_guidance(["mel"])) == {"refer", "uncertain", "not_a_lesion", "benign"}
    assert "No class is reported" not in outcome_guidance(["mel"])["not_a_lesion"]["message"]


def test_name_list() -> None:
    assert name_list([]) == "" and name_list(["a"]) == "a"
    assert name_list(["a", "b"]) == "a or b" and name_list(["a", "b", "c"], "and") == "a, b and c"


def test_training_photos_are_named_by_kind_and_source() -> None:
    seven_centre = [{"name": "ham10000", "kind": "dermoscopic"}, {"name": "milk10k_dermoscopic", "kind": "dermoscopic"},
                    {"name": "milk10k_clinical", "kind": "clinical"}, {"name": "pad_ufes_20", "kind": "smartphone"}]
    assert describe_training_photos(seven_centre) == ("dermatoscope images, close-up camera photos and phone photos "
                                                      "(HAM10000, MILK10k, PAD-UFES-20)")
    phones = describe_training_photos([{"name": "pad", "kind": "smartphone"}])
    assert phones == "phone photos (pad)" and "dermato" not in phones
    assert describe_training_photos([]) is None
