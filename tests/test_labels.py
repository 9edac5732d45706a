import numpy as np
import pytest

from emotion_app.labels import (
    ID2LABEL,
    LABEL2ID,
    LABELS,
    NUM_LABELS,
    check_label_maps,
    parse_label,
)

DATASET_ORDER = ["sadness", "joy", "love", "anger", "fear", "surprise"]  # dair-ai/emotion's ClassLabel


def test_labels_are_the_data_sets_six_in_order():
    assert list(LABELS) == DATASET_ORDER
    assert NUM_LABELS == 6
    assert ID2LABEL == dict(enumerate(DATASET_ORDER))
    assert LABEL2ID == {name: i for i, name in enumerate(DATASET_ORDER)}


@pytest.mark.parametrize("value, expected", [
    ("sadness", 0), ("JOY", 1), (" Love ", 2), ("Anger", 3), ("fEaR", 4), ("surprise\n", 5),
    (0, 0), (5, 5), ("3", 3), (" 4 ", 4), (2.0, 2), (np.int64(5), 5), (np.float64(1.0), 1),
])
def test_parse_label_accepts_names_in_any_case_and_ids(value, expected):
    assert parse_label(value) == expected


@pytest.mark.parametrize("value", ["happiness", "", "6", "-1", 6, -1, 1.5, None, True, "joy!", [1],
                                   np.int64(6), np.bool_(True)])
def test_parse_label_rejects_anything_else_saying_what_is_expected(value):
    with pytest.raises(ValueError) as err:
        parse_label(value)
    message = str(err.value)
    assert repr(value) in message or repr(str(value).strip()).strip("'") in message
    assert "sadness, joy, love, anger, fear, surprise" in message
    assert "0-5" in message


def test_check_label_maps_accepts_our_order_with_int_or_str_keys():
    check_label_maps(dict(enumerate(DATASET_ORDER)), "model")
    check_label_maps({str(i): name for i, name in enumerate(DATASET_ORDER)}, "model")


@pytest.mark.parametrize("id2label", [
    dict(enumerate(["joy", "sadness", "love", "anger", "fear", "surprise"])),  # swapped
    dict(enumerate(DATASET_ORDER[:5])),  # one missing
    {0: "LABEL_0", 1: "LABEL_1"},
])
def test_check_label_maps_rejects_other_label_sets_naming_the_source(id2label):
    with pytest.raises(ValueError, match="my-adapter has labels .* expected"):
        check_label_maps(id2label, "my-adapter")
