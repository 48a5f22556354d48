"""The questionnaire: how answers are read, and the one-line errors for answers it does not take."""

from __future__ import annotations

import pytest

from dermtool import DermtoolError
from dermtool.fusion.questionnaire import (
    QUESTION_NAMES,
    QUESTIONS,
    answers_from_row,
    parse_answer_arguments,
    question,
    read_answers,
)


def _one_line_error(call, *arguments) -> str:
    with pytest.raises(DermtoolError) as caught:
        call(*arguments)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_an_unknown_question_is_refused_naming_the_questions() -> None:
    message = _one_line_error(read_answers, {"colour": "brown"})
    assert "'colour'" in message and all(name in message for name in QUESTION_NAMES)
    assert "unknown question" in _one_line_error(parse_answer_arguments, ["weight=70"])


@pytest.mark.parametrize("argument, allowed", [
    ("age=200", "a number of years (0-120)"),
    ("age=-1", "a number of years (0-120)"),
    ("age=old", "a number of years (0-120)"),
    ("bleed=maybe", "bleed: yes or no"),
    ("site=elbowpit", "head_neck, trunk, arm, hand, leg, foot, genital"),
    ("sex=x", "female or male"),
])
def test_an_answer_the_question_does_not_take_names_it_and_its_answers(argument: str, allowed: str) -> None:
    name, value = argument.split("=")
    message = _one_line_error(parse_answer_arguments, [argument])
    assert f"{name}=" in message and value in message and allowed in message and "unknown" in message


def test_badly_written_answer_arguments_say_how_to_write_them() -> None:
    assert "QUESTION=ANSWER" in _one_line_error(parse_answer_arguments, ["bleed"])
    assert "given twice" in _one_line_error(parse_answer_arguments, ["bleed=yes", "bleed=no"])


@pytest.mark.parametrize("value", [None, "", "  ", "UNK", "unknown", "NaN", float("nan"), "?"])
def test_missing_and_unknown_answers_are_left_out(value) -> None:
    assert read_answers({"bleed": value, "age": value, "site": value}) == {}


def test_numbers_are_read_into_age_bands_and_levels_are_accepted_as_answers() -> None:
    assert parse_answer_arguments(["age=64", "bleed=yes"]) == {"age": "60-74", "bleed": "yes"}
    assert read_answers({"age": 29.9, "sex": "F"}) == {"age": "0-29", "sex": "female"}
    assert read_answers({"age": 75}) == {"age": "75+"}
    for item in QUESTIONS:  # every level an answer is read into is itself an answer
        for level in item.levels:
            assert item.read(level) == level, (item.name, level)


def test_pad_ufes_20_rows_are_read_as_they_are() -> None:
    row = {"image_id": "PAT_1008_59_297", "dx": "sek", "age": "64", "gender": "", "region": "FOREARM",
           "itch": "False", "grew": "True", "hurt": "False", "changed": "UNK", "bleed": "False",
           "elevation": "True", "biopsed": "False"}
    assert answers_from_row(row) == {"age": "60-74", "site": "arm", "itch": "no", "grew": "yes", "hurt": "no",
                                     "bleed": "no", "elevation": "yes"}
    assert answers_from_row({"gender": "MALE", "region": "THIGH"}) == {"sex": "male", "site": "leg"}


def test_ham10000_rows_are_read_as_they_are() -> None:
    row = {"lesion_id": "HAM_0000118", "image_id": "ISIC_0027419", "dx": "bkl", "dx_type": "histo",
           "age": "80.0", "sex": "male", "localization": "lower extremity"}
    assert answers_from_row(row) == {"age": "75+", "sex": "male", "site": "leg"}
    assert answers_from_row({"sex": "unknown", "localization": "unknown", "age": ""}) == {}
    assert answers_from_row({"localization": "upper extremity"}) == {"site": "arm"}


def test_isic_rows_are_read_as_they_are() -> None:
    row = {"image_id": "ISIC_0000000", "dx": "nv", "challenge_split": "train", "age_approximate": "55",
           "sex": "female"}
    assert answers_from_row(row) == {"age": "45-59", "sex": "female"}
    assert answers_from_row({"age_approx": "70", "anatom_site_general": "lower extremity"}) == {"age": "60-74",
                                                                                              "site": "leg"}


def test_booleans_and_aliases() -> None:
    assert read_answers({"itch": True, "hurt": False, "gender": "female"}) == {"itch": "yes", "hurt": "no",
                                                                             "sex": "female"}
    assert question("Region").name == "site" and question("localization").name == "site"


def test_milk10k_metadata_gives_age_sex_and_site_for_almost_every_image(milk10k_dir) -> None:
    from dermtool.fusion.fitting import answers_of_csv

    answers = answers_of_csv(milk10k_dir / "metadata.csv")
    assert len(answers) == 6984
    assert sum(set(item) == {"age", "sex", "site"} for item in answers.values()) > 6900
    sites = {item.get("site") for item in answers.values()}
    assert sites == {"head_neck", "trunk", "arm", "leg", "hand", "foot", "genital", None}
