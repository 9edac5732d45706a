"""Occlusion explanations: on tiny BERT and GPT-2 classifiers the scores are the log-odds changes
computed by hand; on the embedded model the emotion words of clear sentences score highest."""

from __future__ import annotations

import numpy as np
import pytest
from support import REPO, FakePredictor, spy_on

from emotion_app.analysis.explain import (
    no_evidence_log_odds,
    explain,
    log_odds,
    occlusion,
    split_words,
    top_words,
    without_word,
)
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.labels import EMOTIONS


def tiny_classifier(directory) -> EmotionClassifier:
    """A randomly initialised 6-way classifier on a tiny base's config and tokenizer.

    initializer_range 0.5 instead of 0.02: with the usual tiny weights the probabilities are
    near-uniform and hardly move when a word is dropped, so the scores could not be told apart.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from emotion_app.engine.adapters import load_tokenizer
    from emotion_app.labels import EMOTIONS

    tokenizer = load_tokenizer(str(directory))
    config = AutoConfig.from_pretrained(directory, num_labels=6, id2label=dict(enumerate(EMOTIONS)), label2id={name: i for i, name in enumerate(EMOTIONS)},
                                        initializer_range=0.5, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_config(config)
    return EmotionClassifier(model, tokenizer, max_length=32, batch_size=4)


@pytest.fixture(scope="module")
def bert(tiny_bert_dir):
    return tiny_classifier(tiny_bert_dir)


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir):
    return tiny_classifier(tiny_gpt2_dir)


def odds(classifier, text: str, label: int) -> float:
    p = classifier.predict_proba([text])[0, label]
    return float(np.log(p / (1 - p)))


@pytest.mark.parametrize("which", ["bert", "gpt2"])
def test_scores_are_the_log_odds_changes_computed_by_hand(which, request):
    classifier = request.getfixturevalue(which)
    text = "honestly i felt so happy when i read the letter"
    spy = spy_on(classifier)
    result = explain(spy, text)
    words = text.split()
    assert len(spy.calls) == 2  # the text with every variant, then every word alone
    assert spy.calls[0][0] == text and len(spy.calls[0]) == 1 + len(words) and spy.calls[1] == words

    full = classifier.predict_proba([text])[0]
    label = int(full.argmax())
    assert result["label"] == EMOTIONS[label]
    assert [result["probabilities"][name] for name in EMOTIONS] == pytest.approx(full, abs=1e-5)
    by_hand = []
    for i, word in enumerate(words):
        shorter = " ".join(words[:i] + words[i + 1:])
        left_out = odds(classifier, text, label) - odds(classifier, shorter, label)
        alone = odds(classifier, word, label) - np.log(1 / 5)  # against the uniform 1/6
        by_hand.append((left_out + alone) / 2)
    pieces = [piece for piece, _ in result["attributions"]]
    scores = [score for _, score in result["attributions"]]
    assert [p.strip() for p in pieces] == words
    assert scores == pytest.approx(by_hand, abs=1e-4)
    assert max(abs(s) for s in scores) > 0.05  # the tiny model does react to words


def test_an_explicit_label_is_explained_and_text_spacing_is_kept(bert):
    text = "  i am\tso   scared\n"
    spy = spy_on(bert)
    attributions = occlusion(spy, text, label="fear")
    assert "".join(piece for piece, _ in attributions) == text
    assert [p for p, _ in attributions] == ["  i ", "am\t", "so   ", "scared\n"]
    fear_odds = log_odds(bert.predict_proba(spy.calls[0] + spy.calls[1])[:, EMOTIONS.index("fear")])
    expected = ((fear_odds[0] - fear_odds[1:5]) + (fear_odds[5:] - no_evidence_log_odds(6))) / 2
    assert [s for _, s in attributions] == pytest.approx(expected, abs=1e-6)
    # the variants drop one word and the whitespace before it (after it, for the first word)
    assert spy.calls[0][1:5] == ["  am\tso   scared\n", "  i\tso   scared\n", "  i am   scared\n", "  i am\tso\n"]
    assert spy.calls[1] == ["i", "am", "so", "scared"]
    assert occlusion(bert, text, label=4) == pytest.approx(attributions)


def test_one_word_is_scored_against_the_uniform_baseline(gpt2):
    spy = spy_on(gpt2)
    [(piece, score)] = occlusion(spy, "furious")
    assert spy.calls == [["furious"]]  # no empty text goes to the model
    full = gpt2.predict_proba(["furious"])[0]
    assert piece == "furious"
    assert score == pytest.approx(np.log(full.max() / (1 - full.max())) - np.log(1 / 5), abs=1e-6)


def test_given_probabilities_of_the_text_replace_its_own_pass(bert):
    text = "i felt so happy when i read the letter"
    words = text.split()
    shown = bert.predict_proba([text])[0]
    spy = spy_on(bert)
    given = explain(spy, text, full=shown)
    assert len(spy.calls) == 2 and len(spy.calls[0]) == len(words)  # the variants, then the words; not the text
    assert text not in spy.calls[0] and spy.calls[1] == words
    computed = explain(bert, text)
    assert given["label"] == computed["label"]
    assert [given["probabilities"][name] for name in EMOTIONS] == pytest.approx(shown, abs=1e-7)
    assert [s for _, s in given["attributions"]] == pytest.approx([s for _, s in computed["attributions"]], abs=1e-4)
    # the given row is what gets explained: a different one changes the label and the scores
    other = np.full(len(EMOTIONS), 0.02)
    other[5] = 0.9
    assert explain(bert, text, full=other)["label"] == "surprise"
    spy.calls.clear()
    [(_, score)] = explain(spy, "furious", full=other)["attributions"]
    assert spy.calls == [] and score == pytest.approx(np.log(0.9 / 0.1) - np.log(1 / 5))


@pytest.mark.parametrize("full", [np.ones(5) / 5, np.ones((2, 6)) / 6, [np.nan] * 6])
def test_given_probabilities_of_the_wrong_shape_are_rejected(full):
    spy = FakePredictor()
    with pytest.raises(ValueError, match="expected the text's 6 finite probabilities"):
        explain(spy, "so happy", full=full)
    assert spy.calls == []


@pytest.mark.parametrize("text, message", [
    ("", "the text is empty"),
    ("   \n", "the text is empty"),
    (None, "expected a string"),
    (["a list"], "expected a string"),
])
def test_bad_texts_are_rejected_before_the_model_runs(text, message):
    spy = FakePredictor()
    with pytest.raises(ValueError, match=message):
        occlusion(spy, text)
    assert spy.calls == []


def test_too_many_words_and_unknown_labels_are_rejected():
    spy = FakePredictor()
    with pytest.raises(ValueError, match="has 5 words: occlusion explains at most 4"):
        occlusion(spy, "a b c d e", max_words=4)
    with pytest.raises(ValueError, match="unknown label 'bored'"):
        occlusion(spy, "a b", label="bored")
    assert spy.calls == []


def test_a_classifier_returning_the_wrong_shape_is_reported():
    broken = FakePredictor(lambda texts: np.ones((1, 6)) / 6)
    with pytest.raises(ValueError, match=r"predict_proba returned have shape \(1, 6\): expected \(3, 6\)"):
        occlusion(broken, "a b")


def test_helpers():
    text = "a bb  ccc"
    spans = split_words(text)
    assert [text[s:e] for s, e in spans] == ["a", "bb", "ccc"]
    assert [without_word(text, spans, i) for i in range(3)] == ["bb  ccc", "a  ccc", "a bb"]
    assert top_words([("a ", 0.1), ("bb ", 0.5), ("c", -0.2)], k=2) == [("bb", 0.5), ("a", 0.1)]


# Clear sentences written for this test, with their emotion words (the embedded model, as the app runs it).
CLEAR = [
    ("i am so happy and excited, today was a wonderful day", {"happy", "excited,", "wonderful"}),
    ("i feel so lonely and miserable since my dog died", {"lonely", "miserable"}),
    ("i am so angry that they cancelled my flight without any notice", {"angry"}),
    ("i feel nervous and scared about the surgery tomorrow", {"nervous", "scared"}),
    ("i was shocked and amazed when i saw the final results", {"shocked", "amazed"}),
    ("i feel so happy and grateful for all the support from my friends today", {"happy", "grateful"}),
    ("i feel hopeless and empty inside", {"hopeless", "empty"}),
    ("i feel so loving and tender towards my wife", {"loving", "tender"}),
    ("i feel furious and irritated at my rude boss", {"furious", "irritated", "rude"}),
    ("i feel anxious and afraid about the exam", {"anxious", "afraid"}),
    ("i feel amazed and shocked by the sudden news", {"amazed", "shocked"}),
]


@pytest.fixture(scope="module")
def shipped():
    return EmotionClassifier.from_adapter(str(REPO / "models" / "minilm-emotion-lora"))


@pytest.mark.parametrize("text, emotion_words", CLEAR)
def test_the_emotion_words_of_clear_sentences_score_highest(shipped, text, emotion_words):
    scores = dict(top_words(explain(shipped, text)["attributions"], k=len(text.split())))
    ranked = sorted(scores, key=scores.get, reverse=True)
    assert ranked[0] in emotion_words, scores
    assert all(scores[word] > 0 for word in emotion_words), scores
    assert set(ranked[:len(emotion_words) + 1]) >= emotion_words, scores  # at most one other word among them
