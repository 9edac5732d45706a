import numpy as np
import pytest

from emotion_app.labels import EMOTIONS, NEUTRAL, check_labels, emotion_columns, label_order, parse_label

DATASET_ORDER = ["sadness", "joy", "love", "anger", "fear", "surprise"]  # dair-ai/emotion's ClassLabel
SEVEN = (*DATASET_ORDER, "neutral")


def test_the_seed_labels_are_the_data_sets_six_in_order():
    assert list(EMOTIONS) == DATASET_ORDER
    assert NEUTRAL == "neutral"


@pytest.mark.parametrize("value, expected", [
    ("sadness", 0), ("JOY", 1), (" Love ", 2), ("Anger", 3), ("fEaR", 4), ("surprise\n", 5),
    (0, 0), (5, 5), ("3", 3), (" 4 ", 4), (2.0, 2), (np.int64(5), 5), (np.float64(1.0), 1),
])
def test_parse_label_accepts_names_in_any_case_and_ids(value, expected):
    assert parse_label(value) == expected


@pytest.mark.parametrize("value", ["happiness", "", "6", "-1", 6, -1, 1.5, None, True, "joy!", [1],
                                   np.int64(6), np.bool_(True), "neutral"])
def test_parse_label_rejects_anything_else_saying_what_is_expected(value):
    with pytest.raises(ValueError) as err:
        parse_label(value)
    message = str(err.value)
    assert repr(value) in message or repr(str(value).strip()).strip("'") in message
    assert "sadness, joy, love, anger, fear, surprise" in message
    assert "0-5" in message


def test_parse_label_reads_against_the_models_own_labels():
    assert parse_label("Neutral", SEVEN) == 6
    assert parse_label(6, SEVEN) == 6
    assert parse_label("Billing", ("billing", "shipping")) == 0
    with pytest.raises(ValueError, match="billing, shipping.*0-1"):
        parse_label("joy", ("billing", "shipping"))


@pytest.mark.parametrize("names, expected", [
    (["joy", "sadness"], EMOTIONS),  # names among the six: the seed's six, in its order
    (["Neutral", "anger", "joy"], (*EMOTIONS, NEUTRAL)),  # neutral goes after them
    (DATASET_ORDER + ["neutral"], SEVEN),
    (["shipping", "billing", "Other"], ("billing", "other", "shipping")),  # anything else: sorted
    (["joy", "billing"], ("billing", "joy")),
])
def test_label_order_follows_the_documented_rule(names, expected):
    assert label_order(names) == tuple(expected)


@pytest.mark.parametrize("labels, problem", [
    (["joy"], "at least two"),
    ([], "at least two"),
    (["joy", ""], "non-empty"),
    (["joy", 3], "non-empty"),
    (["joy", "Joy"], "more than once"),
])
def test_check_labels_names_what_is_wrong_and_the_source(labels, problem):
    with pytest.raises(ValueError, match=problem) as err:
        check_labels(labels, "labels.json")
    assert "labels.json" in str(err.value)


def test_emotion_columns_find_the_six_in_a_larger_label_list():
    assert emotion_columns(SEVEN) == [0, 1, 2, 3, 4, 5]
    assert emotion_columns(("neutral", *reversed(DATASET_ORDER))) == [6, 5, 4, 3, 2, 1]
    assert emotion_columns(("billing", "shipping")) == []
