"""Honest confidence on unfamiliar text (analysis/shift.py, engine/ood.py, engine/features.py): the
detector on synthetic in/out clusters, the per-file estimate on a hand-made example, the review
rule, the features from the same forward pass (tiny BERT and GPT-2, torch and ONNX Runtime), the
stored files, and the outputs (score CLI report, columns)."""

from __future__ import annotations

import json
import shutil
import zlib

import numpy as np
import pytest

from emotion_app.analysis.calibration import in_distribution_coverage
from emotion_app.analysis.review import needs_review, review_threshold_for_accuracy
from emotion_app.analysis.shift import (
    FileEstimate,
    calibrate_detector,
    estimate_file_accuracy,
    fit_detector,
    p_correct,
    sample_rows,
    shifted_copies,
    wilson_interval,
)
from emotion_app.artifacts import SHIFT_ARRAYS_FILE, SHIFT_SCALARS_FILE
from emotion_app.engine.classifier import BasePredictor
from emotion_app.engine.ood import ShiftDetector
from emotion_app.labels import EMOTIONS

D, K = 16, len(EMOTIONS)


def clusters(n, rng, ood=False):
    """In distribution: K separated Gaussian classes. OOD: a cluster between all classes, like none
    of them (the relative score cancels shifts along directions the classes share, by design)."""
    y = rng.integers(0, K, n)
    centers = np.eye(K, D) * 6
    return (centers.mean(0) if ood else centers[y]) + rng.normal(size=(n, D)), y


def probs_for(y, rng, accuracy=0.9, confidence=0.9):
    """Rows right with probability `accuracy`, each with a top probability near `confidence`."""
    n = len(y)
    predicted = np.where(rng.random(n) < accuracy, y, (y + 1) % K)
    p = np.full((n, K), (1 - confidence) / (K - 1)) + rng.uniform(0, 0.05, (n, K))
    p[np.arange(n), predicted] = confidence
    return p / p.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x_train, y_train = clusters(3000, rng)
    x_val, y_val = clusters(1000, rng)
    return calibrate_detector(fit_detector(x_train, y_train), x_val, probs_for(y_val, rng), y_val)


# --- the detector --------------------------------------------------------------------------------

def test_scores_separate_in_and_out_clusters(fitted):
    rng = np.random.default_rng(1)
    inside, outside = fitted.score(clusters(500, rng)[0]), fitted.score(clusters(500, rng, ood=True)[0])
    assert fitted.is_out_of_distribution(outside).mean() > 0.95
    assert fitted.is_out_of_distribution(inside).mean() < 0.10
    assert np.mean(outside[:, None] > inside[None, :]) > 0.95  # AUROC


def test_the_fast_score_equals_the_definition(fitted):
    x = clusters(20, np.random.default_rng(2))[0]

    def mahalanobis(mean, precision):
        c = x - mean
        return np.einsum("nd,de,ne->n", c, precision.astype(np.float64), c)

    by_definition = (np.min([mahalanobis(m, fitted.precision) for m in fitted.means], axis=0)
                     - mahalanobis(fitted.background_mean, fitted.background_precision))
    np.testing.assert_allclose(fitted.score(x), by_definition, rtol=1e-6, atol=1e-6)


def test_calibration_flags_the_chosen_share_of_validation(fitted):
    assert fitted.calibrated and fitted.expected_ood_share == pytest.approx(0.05)
    assert 0.85 < fitted.reference_accuracy < 0.95
    x, _ = clusters(1000, np.random.default_rng(3))
    assert fitted.is_out_of_distribution(fitted.score(x)).mean() == pytest.approx(0.05, abs=0.03)


@pytest.fixture(scope="module")
def informed(fitted):
    """Calibrated on validation rows of which the unusual ones are right only 40% of the time."""
    rng = np.random.default_rng(6)
    x, y = clusters(900, rng)
    xo, yo = clusters(100, rng, ood=True)
    probs = np.vstack([probs_for(y, rng, accuracy=0.95), probs_for(yo, rng, accuracy=0.4)])
    return calibrate_detector(fitted, np.vstack([x, xo]), probs, np.r_[y, yo])


def test_p_correct_falls_as_rows_get_unusual_when_they_are_less_often_right(informed):
    detector = informed
    same_confidence = rows_with_confidence([0.9, 0.9])
    usual, unusual = p_correct(detector, same_confidence, np.array([detector.score_center, detector.threshold * 2]))
    assert detector.coef_ood < 0 and usual > unusual


def test_save_and_load_round_trip_atomically(fitted, tmp_path):
    fitted.save(tmp_path)
    back = ShiftDetector.load(tmp_path)
    x = clusters(50, np.random.default_rng(4))[0]
    np.testing.assert_allclose(back.score(x), fitted.score(x), rtol=1e-6)
    assert back.scalars() == fitted.scalars()  # thresholds and the P(correct) model, exactly
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([SHIFT_ARRAYS_FILE, SHIFT_SCALARS_FILE])  # no temp files


def test_broken_detector_files_say_how_to_fix_them(fitted, tmp_path):
    assert ShiftDetector.load(tmp_path) is None  # none: older adapters
    fitted.save(tmp_path)
    scalars = tmp_path / SHIFT_SCALARS_FILE
    record = json.loads(scalars.read_text())
    scalars.write_text(json.dumps({**record, "format_version": 99}))
    with pytest.raises(ValueError, match="format 1.*python -m emotion_app calibrate"):
        ShiftDetector.load(tmp_path)
    scalars.write_text(json.dumps({**record, "arrays_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="does not belong to"):
        ShiftDetector.load(tmp_path)
    (tmp_path / SHIFT_ARRAYS_FILE).unlink()
    with pytest.raises(ValueError, match=f"but not {SHIFT_ARRAYS_FILE}"):
        ShiftDetector.load(tmp_path)


@pytest.mark.parametrize("call, match", [
    (lambda d: d.score(np.zeros((3, D + 1))), r"expected \[N, 16\]"),
    (lambda d: d.score(np.full((2, D), np.nan)), "non-finite"),
    (lambda d: estimate_file_accuracy(d, np.ones((2, K)), np.zeros(2)), "summing to 1"),
    (lambda d: estimate_file_accuracy(d, np.full((2, K), 1 / K), np.zeros(3)), r"expected \(3, 6\)"),
    (lambda d: fit_detector(np.zeros((7, D)), np.array([0, 0, 1, 2, 3, 4, 5])), "at least 2"),
    (lambda d: fit_detector(np.zeros((12, D)), np.repeat(np.arange(K), 2)), "zero variance"),
    (lambda d: FileEstimate(ShiftDetector(d.means, d.precision, d.background_mean, d.background_precision)),
     "needs a calibrated"),
    (lambda d: ShiftDetector(d.means, d.precision[:3], d.background_mean, d.background_precision), "expected"),
])
def test_bad_input_raises_saying_what_was_expected(fitted, call, match):
    with pytest.raises(ValueError, match=match):
        call(fitted)


# --- the per-file estimate ----------------------------------------------------------------------

def hand_made_detector() -> ShiftDetector:
    """1-D; P(correct) = sigmoid(logit(confidence)) = confidence, ATC threshold at logit 0 (0.5),
    OOD threshold 1.0, 5% OOD expected, validation accuracy 90%."""
    return ShiftDetector(means=np.zeros((K, 1)), precision=np.ones((1, 1)), background_mean=np.zeros(1),
                         background_precision=np.zeros((1, 1)), threshold=1.0, score_center=0.0, score_scale=1.0,
                         coef_confidence=1.0, coef_ood=0.0, intercept=0.0, atc_threshold=0.0,
                         reference_accuracy=0.9, expected_ood_share=0.05)


def rows_with_confidence(confidences) -> np.ndarray:
    p = np.array([[c, *[(1 - c) / (K - 1)] * (K - 1)] for c in confidences])
    return p


def test_estimate_on_a_hand_made_example():
    detector = hand_made_detector()
    probs = rows_with_confidence([0.8, 0.7, 0.4, 0.6])  # three above the ATC threshold 0.5
    result = estimate_file_accuracy(detector, probs, np.array([0.0, 0.5, 2.0, 3.0]))  # two beyond 1.0
    assert result["rows"] == result["scored"] == 4
    assert result["estimated_accuracy"] == 0.75
    gap = abs(0.75 - np.mean([0.8, 0.7, 0.4, 0.6]))  # ATC against mean P(correct)
    low, high = wilson_interval(3, 4)
    assert result["estimated_accuracy_low"] == pytest.approx(low - gap)
    assert result["estimated_accuracy_high"] == min(1.0, high + gap) == 1.0  # clipped
    assert result["out_of_distribution_share"] == 0.5 and result["threshold"] == 1.0
    assert result["shift_warning"] is True  # 50% OOD: far above 5% + 3 s.d. of 4 rows (38%)


def test_unscored_rows_count_as_rows_and_chunks_add_up():
    detector = hand_made_detector()
    probs = rows_with_confidence([0.8, 0.7, 0.4, 0.6])
    probs[1] = np.nan  # an empty text
    streamed = FileEstimate(detector)
    streamed.add(probs[:2], np.array([0.0, np.nan]))
    streamed.add(probs[2:], np.array([0.2, 0.3]))
    assert streamed.result() == pytest.approx(estimate_file_accuracy(detector, probs, np.array([0.0, np.nan, 0.2, 0.3])))
    result = streamed.result()
    assert result["rows"] == 4 and result["scored"] == 3 and result["shift_warning"] is False
    assert result["estimated_accuracy"] == pytest.approx(2 / 3)
    assert FileEstimate(detector).result()["estimated_accuracy"] is None


def test_wilson_interval_matches_the_textbook_value():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(0, 10)[0] == 0.0


def test_an_in_distribution_file_has_no_warning_and_a_shifted_one_has(informed):
    rng = np.random.default_rng(5)
    x, y = clusters(800, rng)
    inside = estimate_file_accuracy(informed, probs_for(y, rng, accuracy=0.95), informed.score(x))
    assert inside["shift_warning"] is False
    assert inside["estimated_accuracy_low"] <= 0.95 <= inside["estimated_accuracy_high"]
    xo, yo = clusters(800, rng, ood=True)
    outside = estimate_file_accuracy(informed, probs_for(yo, rng, accuracy=0.4), informed.score(xo))
    assert outside["shift_warning"] is True and outside["estimated_accuracy"] < inside["estimated_accuracy"]


def test_shifted_copies_change_the_rows_and_keep_the_labels():
    texts = ["i feel so happy today", "i am feeling scared of the dark", "nothing special happened here today at all"]
    copies, labels = shifted_copies(texts, [1, 4, 0], seed=3)
    assert labels == [1, 4, 0] * 3 and len(copies) == 9
    assert (copies, labels) == shifted_copies(texts, [1, 4, 0], seed=3)  # seeded
    dropped, without_opening, shuffled = copies[:3], copies[3:6], copies[6:]
    for original, short in zip(texts, dropped):
        words = short.split()
        assert words and len(words) <= len(original.split())
        kept = iter(original.split())
        assert all(word in kept for word in words)  # the words left, in their order
    assert without_opening == ["happy today", "scared of the dark", texts[2]]
    assert [sorted(t.split()) for t in shuffled] == [sorted(t.split()) for t in texts]
    assert sum(len(t.split()) for t in dropped) < sum(len(t.split()) for t in texts)


def test_shifted_rows_teach_p_correct_how_unfamiliar_rows_fare(fitted):
    """Validation alone holds no unfamiliar row, so P(correct) cannot learn that such rows are less
    often right: an unfamiliar file right 40 % of the time at 0.9 confidence is estimated near 90 %.
    With shifted rows (here unfamiliar, right 40 %) the estimate falls to the truth, and a familiar
    file keeps its estimate."""
    rng = np.random.default_rng(7)
    x_val, y_val = clusters(1000, rng)
    p_val = probs_for(y_val, rng)
    xs, ys = clusters(1000, rng, ood=True)
    shifted = (xs, probs_for(ys, rng, accuracy=0.4), ys)
    plain = calibrate_detector(fitted, x_val, p_val, y_val)
    taught = calibrate_detector(fitted, x_val, p_val, y_val, shifted=shifted)
    assert taught.coef_ood < plain.coef_ood
    assert taught.threshold == plain.threshold and taught.reference_accuracy == plain.reference_accuracy
    # the intercept is validation's own: mean P(correct) there is the validation accuracy
    assert p_correct(taught, p_val, taught.score(x_val)).mean() == pytest.approx(taught.reference_accuracy, abs=1e-6)
    xo, yo = clusters(800, rng, ood=True)
    p_out = probs_for(yo, rng, accuracy=0.4)
    before, after = (estimate_file_accuracy(d, p_out, d.score(xo)) for d in (plain, taught))
    assert before["estimated_accuracy_low"] > 0.6  # the promise validation alone makes
    assert after["estimated_accuracy_low"] <= 0.4 <= after["estimated_accuracy_high"]
    assert abs(after["estimated_accuracy"] - 0.4) < abs(before["estimated_accuracy"] - 0.4)
    x, y = clusters(800, rng)
    p_in = probs_for(y, rng)
    familiar = [estimate_file_accuracy(d, p_in, d.score(x))["estimated_accuracy"] for d in (plain, taught)]
    assert familiar[1] == pytest.approx(familiar[0], abs=0.02)
    with pytest.raises(ValueError, match=r"expected \(features, probs, labels\)"):
        calibrate_detector(fitted, x_val, p_val, y_val, shifted=xs)


# --- the review rule ------------------------------------------------------------------------------

def test_review_threshold_uses_in_distribution_rows_only():
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.7])
    correct = np.array([1, 1, 1, 0, 1], bool)
    everywhere = np.ones(5, bool)
    assert review_threshold_for_accuracy(confidence, correct, everywhere, 1.0) == 0.9
    assert review_threshold_for_accuracy(confidence, correct, everywhere, 0.8) == 0.7
    # the wrong row is out of distribution: it is never kept, so every in-distribution row can be
    assert review_threshold_for_accuracy(confidence, correct, np.array([1, 1, 1, 0, 1], bool), 1.0) == 0.7
    with pytest.raises(ValueError, match="no confidence threshold reaches accuracy 100.00%"):
        review_threshold_for_accuracy(confidence, ~correct, everywhere, 1.0)


def test_needs_review_flags_low_confidence_and_out_of_distribution_rows():
    probs = rows_with_confidence([0.9, 0.5, 0.9])
    probs = np.vstack([probs, np.full((1, K), np.nan)])  # not scored: not reviewed
    assert needs_review(probs, 0.6).tolist() == [False, True, False, False]
    assert needs_review(probs, 0.6, np.array([True, True, False, True])).tolist() == [False, True, True, False]


def test_in_distribution_coverage_counts_all_rows_and_keeps_no_ood_row():
    probs = rows_with_confidence([0.9, 0.8, 0.7, 0.95])
    labels = [0, 0, 1, 0]  # the 0.7 row is wrong
    curve = in_distribution_coverage(probs, labels, np.array([True, True, True, False]))
    assert curve[0] == [0.7, 0.75, pytest.approx(2 / 3, abs=1e-6)]  # 3 of 4 rows kept at most
    assert curve[-1] == [0.9, 0.25, 1.0]


def test_sample_rows_is_seeded_and_sorted():
    assert sample_rows(5, 10).tolist() == [0, 1, 2, 3, 4]
    first = sample_rows(1000, 10, seed=3)
    assert first.tolist() == sorted(first.tolist()) and len(set(first)) == 10
    assert sample_rows(1000, 10, seed=3).tolist() == first.tolist()


# --- labels the user gave -------------------------------------------------------------------------

def test_threshold_from_the_users_own_labelled_rows():
    from emotion_app.analysis.review import threshold_from_labels

    probs = rows_with_confidence([0.99, 0.95, 0.9, 0.8, 0.7])  # predicted: sadness for every row
    labels = ["sadness", "sadness", "sadness", "joy", "sadness"]
    review = threshold_from_labels(probs, labels, target=0.97)
    assert (review.rows, review.threshold, review.kept_share, review.kept_accuracy) == (5, 0.9, 0.6, 1.0)
    assert review.describe("corrected") == ("On your 5 corrected rows (accuracy 80.0%), confidence >= 0.90 kept "
                                            "60% at 100.0% (target 97%).")
    flagged = threshold_from_labels(probs, labels, 0.97, in_distribution=[True, True, True, False, True])
    assert flagged.threshold == 0.7 and flagged.kept_share == 0.8 and flagged.out_of_distribution == 1
    assert "the 1 unlike the training data always need review" in flagged.describe()
    none = threshold_from_labels(probs, ["joy"] * 5, target=0.97)
    assert none.threshold is None and none.kept_share == 0 and "no confidence threshold reaches 97%" in none.describe()
    with pytest.raises(ValueError, match="target accuracy must be"):
        threshold_from_labels(probs, labels, target=97)


# --- features from the same forward pass ----------------------------------------------------------

def tiny_model(directory):
    from transformers import AutoModelForSequenceClassification

    from emotion_app.engine.adapters import load_tokenizer
    from emotion_app.labels import EMOTIONS

    tokenizer = load_tokenizer(str(directory))
    model = AutoModelForSequenceClassification.from_pretrained(
        directory, num_labels=K, id2label=dict(enumerate(EMOTIONS)), label2id={name: i for i, name in enumerate(EMOTIONS)}, ignore_mismatched_sizes=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def reference_features(model, tokenizer, texts, kind):
    """The hidden state the head reads, computed by hand with the backbone alone."""
    import torch

    encoded = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        if kind == "bert":
            return model.bert(**encoded).last_hidden_state[:, 0].numpy()  # [CLS]: the pooler's input
        hidden = model.transformer(**encoded).last_hidden_state
        last = encoded["attention_mask"].sum(1) - 1  # right padding: the last real token
        return hidden[torch.arange(len(texts)), last].numpy()


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_features_are_what_the_head_reads_in_torch_and_onnx(kind, request, tmp_path):
    from emotion_app.engine.classifier import EmotionClassifier
    from emotion_app.engine.onnx import onnx_model

    model, tokenizer = tiny_model(request.getfixturevalue(f"tiny_{kind}_dir"))
    texts = ["i feel so happy today", "i am", "honestly i felt scared when i read the letter"]
    torch_engine = EmotionClassifier(model, tokenizer, max_length=32, batch_size=2)
    logits, features = torch_engine.logits_and_features(texts)
    assert torch_engine.feature_token == ("first" if kind == "bert" else "last")
    np.testing.assert_allclose(logits, torch_engine.logits(texts), atol=1e-6)
    np.testing.assert_allclose(features, reference_features(model, tokenizer, texts, kind), atol=1e-5)
    onnx_engine = EmotionClassifier(onnx_model(model, [], 1, key=f"features-{kind}", directory=tmp_path),
                                    tokenizer, max_length=32, batch_size=2)
    onnx_logits, onnx_features = onnx_engine.logits_and_features(texts)
    np.testing.assert_allclose(onnx_logits, logits, atol=1e-4)
    np.testing.assert_allclose(onnx_features, features, atol=1e-4)
    assert onnx_engine.feature_token == torch_engine.feature_token  # recorded with the cached model


def engine_with_detector(adapter_dir, tmp_path):
    """The adapter copied, with a detector fitted on its own features, loaded by from_adapter."""
    from support import SPLIT_ROWS

    from emotion_app.analysis.shift import fit_for_classifier
    from emotion_app.engine.classifier import EmotionClassifier

    directory = tmp_path / "adapter"
    shutil.copytree(adapter_dir, directory)
    engine = EmotionClassifier.from_adapter(str(directory))
    rows = {split: ([t for t, _ in r], [y for _, y in r]) for split, r in SPLIT_ROWS.items()}
    detector, entries = fit_for_classifier(engine, rows["train"], rows["validation"], rows["test"])
    detector.save(directory)
    return EmotionClassifier.from_adapter(str(directory)), detector, entries


def test_predict_details_scores_from_the_same_forward_pass(trained_bert_adapter, tmp_path, monkeypatch):
    from emotion_app.engine.classifier import EmotionClassifier
    from emotion_app.engine.onnx import OnnxModel

    engine, detector, entries = engine_with_detector(trained_bert_adapter, tmp_path)
    assert engine.detector is not None and entries["shift_detector"]["fit_rows"] == 48
    texts = ["i feel so happy today", "quarterly revenue rose by four percent", "i am scared"]
    runs = []
    real_run = OnnxModel.run
    monkeypatch.setattr(OnnxModel, "run", lambda self, *a, **k: runs.append(a) or real_run(self, *a, **k))
    engine.batch_size = 8
    details = engine.predict_details(texts)
    assert len(runs) == 1  # probabilities and features from one run of the model
    _, features = engine.logits_and_features(texts)
    np.testing.assert_allclose(details.ood_scores, detector.score(features), rtol=1e-5)
    np.testing.assert_allclose(details.probabilities, engine.predict_proba(texts), atol=1e-6)
    assert details.in_distribution.tolist() == (details.ood_scores <= detector.threshold).tolist()
    plain = EmotionClassifier.from_adapter(str(trained_bert_adapter), detect_shift=False)  # no detector: as before
    assert plain.detector is None and plain.predict_details(texts).ood_scores is None


def test_training_stores_a_detector_and_records_it(trained_bert_adapter):
    metrics = json.loads((trained_bert_adapter / "metrics.json").read_text(encoding="utf-8"))
    record = metrics["shift_detector"]
    assert record["files"] == [SHIFT_ARRAYS_FILE, SHIFT_SCALARS_FILE] and record["fit_rows"] == 48
    assert record["engine"] == "torch (the training model)" and "first token" in record["feature"]
    assert record["calibrated_on"].startswith("validation and its shifted copies")
    assert 0 <= record["test_flagged"] <= 1 and len(metrics["coverage_in_distribution"]) > 0
    detector = ShiftDetector.load(trained_bert_adapter)
    assert detector.threshold == record["threshold"] and detector.dim == 32


def test_a_detector_for_another_base_is_refused(fitted, trained_bert_adapter, tmp_path):
    from emotion_app.engine.classifier import EmotionClassifier

    directory = tmp_path / "adapter"
    shutil.copytree(trained_bert_adapter, directory)
    fitted.save(directory)  # 16-dimensional; the tiny BERT's features have 32
    with pytest.raises(ValueError, match="fitted on 16-dimensional features.*python -m emotion_app calibrate"):
        EmotionClassifier.from_adapter(str(directory))



# --- the outputs: score CLI columns and --report ----------------------------------------------------

EMOTION_WORDS = {"sad": 0, "happy": 1, "loving": 2, "angry": 3, "scared": 4, "surprised": 5}


class KeywordPredictor(BasePredictor):
    """An engine without a model: a text with an emotion word gets that emotion (confidence 0.6-0.9,
    from the text's hash) and a feature vector near its class; any other text one between the
    classes (unfamiliar)."""

    def __init__(self, detector: ShiftDetector | None = None):
        self.detector = detector

    def logits_and_features(self, texts, progress=None):
        logits, features = np.zeros((len(texts), K)), np.zeros((len(texts), D))
        centers = np.eye(K, D) * 6
        for i, text in enumerate(texts):
            rng = np.random.default_rng(zlib.crc32(text.encode()))
            label = next((k for word, k in EMOTION_WORDS.items() if word in text.split()), None)
            logits[i, label if label is not None else i % K] = rng.uniform(2.0, 3.8)
            features[i] = (centers.mean(0) if label is None else centers[label]) + rng.normal(size=D)
        if progress is not None:
            progress(len(texts), len(texts))
        return logits, features

    def logits(self, texts, progress=None):
        return self.logits_and_features(texts, progress)[0]


def familiar_texts(n: int, start: int = 0) -> list[str]:
    words = list(EMOTION_WORDS)
    return [f"i feel {words[i % K]} about thing number {i}" for i in range(start, start + n)]


@pytest.fixture(scope="module")
def keyword_detector(fitted):
    """Calibrated on the predictor's own validation texts, the 10% least confident labelled otherwise."""
    predictor = KeywordPredictor()
    texts = familiar_texts(600, start=10_000)
    logits, features = predictor.logits_and_features(texts)
    labels = logits.argmax(1)
    unsure = np.argsort(logits.max(1))[:60]
    labels[unsure] = (labels[unsure] + 1) % K
    from emotion_app.engine.classifier import softmax

    return calibrate_detector(fitted, features, softmax(logits), labels)


def write_texts(path, texts) -> None:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["id", "text"], *[[str(i), t] for i, t in enumerate(texts)]])


def run_score(tmp_path, texts, predictor, name: str, *options) -> tuple[int, dict, list[dict], str]:
    import csv

    from emotion_app.cli.score import main

    source, target, report = tmp_path / f"{name}.csv", tmp_path / f"{name}-out.csv", tmp_path / f"{name}.json"
    write_texts(source, texts)
    code = main([str(source), "-o", str(target), "--report", str(report), "--no-progress", *options],
                classifier=predictor)
    with open(target, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return code, json.loads(report.read_text(encoding="utf-8")), rows, name


REPORT_FIELDS = {"rows", "scored", "estimated_accuracy", "estimated_accuracy_low", "estimated_accuracy_high",
                 "out_of_distribution_share", "shift_warning", "threshold"}


def test_score_cli_reports_a_familiar_file_without_a_warning(tmp_path, keyword_detector, capsys):
    texts = [*familiar_texts(80), ""]
    code, report, rows, _ = run_score(tmp_path, texts, KeywordPredictor(keyword_detector), "familiar",
                                      "--threshold", "0.5")
    assert code == 0
    assert REPORT_FIELDS <= set(report)
    assert (report["rows"], report["scored"], report["shift_warning"]) == (81, 80, False)
    assert report["estimated_accuracy_low"] <= report["estimated_accuracy"] <= report["estimated_accuracy_high"]
    assert report["estimated_accuracy"] > 0.8 and report["out_of_distribution_share"] < 0.15
    assert report["threshold"] == keyword_detector.threshold and report["review_threshold"] == 0.5
    assert report["shift_check"] == "available"
    assert list(rows[0])[-5:] == ["p_surprise", "in_distribution", "ood_score", "needs_review", "note"]
    assert rows[-1]["in_distribution"] == rows[-1]["ood_score"] == rows[-1]["needs_review"] == ""  # empty text
    assert sum(row["needs_review"] == "True" for row in rows) == report["needs_review"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("Scored 81 rows") and "Estimated accuracy on this file" in last
    assert "unlike the training data:" not in last


def test_score_cli_warns_about_an_unfamiliar_file_and_sends_its_rows_to_review(tmp_path, keyword_detector, capsys):
    texts = [f"quarterly revenue table, section {i}" for i in range(60)]
    code, report, rows, _ = run_score(tmp_path, texts, KeywordPredictor(keyword_detector), "unfamiliar",
                                      "--threshold", "0.5")
    assert code == 0 and report["shift_warning"] is True and report["out_of_distribution_share"] > 0.9
    assert all(float(row["confidence"]) > 0.5 for row in rows)  # confident, and yet:
    assert {row["in_distribution"] for row in rows} == {"False"} and {row["needs_review"] for row in rows} == {"True"}
    assert "review threshold's promise do not hold" in report["summary"]
    assert "Warning: this file is unlike the training data" in capsys.readouterr().out.strip().splitlines()[-1]


def test_a_shifted_file_sends_even_its_familiar_confident_rows_to_review(tmp_path, keyword_detector, capsys):
    texts = [*familiar_texts(30), *[f"quarterly revenue table, section {i}" for i in range(30)]]
    code, report, rows, _ = run_score(tmp_path, texts, KeywordPredictor(keyword_detector), "mixed",
                                      "--threshold", "0.5")
    familiar = [row for row in rows[:30] if row["in_distribution"] == "True" and float(row["confidence"]) >= 0.5]
    assert code == 0 and report["shift_warning"] is True and len(familiar) >= 20
    assert {row["needs_review"] for row in rows} == {"True"}  # the familiar, confident rows too
    assert report["review_all_rows"] is True and report["needs_review"] == 60
    assert "Every row needs review" in report["summary"] and "label a sample" in report["summary"]
    assert "Every row needs review" in capsys.readouterr().out.strip().splitlines()[-1]


def test_the_whole_file_decision_is_made_on_the_first_chunk(tmp_path, keyword_detector, caplog):
    """Rows are written as they are scored: a file whose first chunk looks familiar keeps the
    per-row rule, and the run says that the file as a whole did not."""
    texts = [*familiar_texts(40), *[f"quarterly revenue table, section {i}" for i in range(60)]]
    code, report, rows, _ = run_score(tmp_path, texts, KeywordPredictor(keyword_detector), "late-shift",
                                      "--threshold", "0.5", "--chunk_rows", "40")
    assert code == 0 and report["shift_warning"] is True and report["review_all_rows"] is False
    assert {row["needs_review"] for row in rows[40:]} == {"True"}  # unfamiliar: reviewed row by row
    assert {row["needs_review"] for row in rows[:40]} != {"True"}
    assert "Every row needs review" not in report["summary"]
    assert "the first 40 rows looked like the training data" in caplog.text
    # without a threshold nothing is sent to review, and the flag says so
    code, report, rows, _ = run_score(tmp_path, texts, KeywordPredictor(keyword_detector), "no-threshold")
    assert report["review_all_rows"] is False and "needs_review" not in rows[0]


def test_without_a_detector_the_outputs_are_as_before_and_say_the_check_is_unavailable(tmp_path, capsys):
    code, report, rows, _ = run_score(tmp_path, familiar_texts(10), KeywordPredictor(None), "plain")
    assert code == 0 and "in_distribution" not in rows[0] and "ood_score" not in rows[0]
    assert report["shift_check"] == "unavailable" and report["estimated_accuracy"] is None
    assert (report["rows"], report["scored"], report["shift_warning"]) == (10, 10, None)
    assert "check for text unlike the training data is unavailable" in capsys.readouterr().out


def test_the_batch_tab_sends_a_shifted_file_to_review_and_says_why(tmp_path, keyword_detector):
    import pandas as pd

    from emotion_app.ui.layout import Handlers

    handlers = Handlers.create(KeywordPredictor(keyword_detector), metrics={}, output_dir=tmp_path / "out")
    mixed, familiar = tmp_path / "mixed.csv", tmp_path / "familiar.csv"
    write_texts(mixed, [*familiar_texts(30), *[f"quarterly revenue table, section {i}" for i in range(30)]])
    write_texts(familiar, familiar_texts(60))
    summary, _, _, result = handlers.batch_tab.score_csv(str(mixed), "text", "auto", 0.5)
    assert set(pd.read_csv(result)["needs_review"]) == {True}
    assert "Every row needs review" in summary and "(all of them)" in summary
    summary, _, _, result = handlers.batch_tab.score_csv(str(familiar), "text", "auto", 0.5)
    flags = pd.read_csv(result)["needs_review"]
    assert not flags.all() and f"**{int(flags.sum())}** row(s)" in summary
    assert "Every row needs review" not in summary
