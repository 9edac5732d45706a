"""Honest confidence, measured: every figure of docs/trust.md in one seeded command.

    python benchmarks/bench_trust.py --output docs/bench_trust.json
    python benchmarks/bench_trust.py --refit   # fit the detector again first (in a copy), then measure

On the embedded models/minilm-emotion-lora with the engine the app runs (int8 ONNX Runtime on CPU;
--precision/--runtime choose another), on dair-ai/emotion validation and test
(../shared/data/emotion) and GoEmotions mapped to the six labels (../shared/data/goemotions-6/dev.csv,
Reddit comments: the shifted file):
- the OOD score: AUROC of dev against test and against validation, the share of each flagged;
- the file estimate (analysis.shift.FileEstimate) against the truth on each, with its interval and
  shift warning; the warning's false-alarm rate on 200 random 100-row chunks of test;
- the 97% review rule: the threshold `--target_accuracy 0.97` gives (the test curve; with the
  detector the honest rule, OOD rows always reviewed, and a file with a shift warning reviewed
  entirely) and what it keeps, at what accuracy, on each split; confidence alone for comparison;
- what labels of the user's own give on dev: a threshold from n labelled rows, applied to the rest;
- explanations: on 19 clear sentences, whether an emotion word gets the top score;
- cost: the OOD score's time per row beside the engine's (the same run, so the share holds even
  on a busy machine; the engine's rows/s are benchmarks/bench_inference.py's business).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import EMBEDDED_ADAPTER, EMOTION_DATA, GOEMOTIONS6_DEV, setup_logging

from emotion_app.analysis.explain import explain
from emotion_app.analysis.review import (
    resolve_threshold,
    review_whole_file,
    threshold_from_labels,
)
from emotion_app.analysis.shift import FileEstimate, describe_estimate
from emotion_app.artifacts import read_metrics, write_json
from emotion_app.constants import PRECISIONS, RUNTIMES
from emotion_app.data.labelled import read_labeled_file
from emotion_app.engine import words
from emotion_app.engine.classifier import EmotionClassifier

logger = logging.getLogger("bench_trust")
TARGET = 0.97
APP_BATCH_SIZE = 32  # the app's (from_adapter's default): int8 activations are quantized per batch
CHUNKS, CHUNK_ROWS = 200, 100
# Clear sentences written for this benchmark, with their emotion words.
CLEAR = [
    ("i am so happy and excited, today was a wonderful day", {"happy", "excited,", "wonderful"}),
    ("i feel so lonely and miserable since my dog died", {"lonely", "miserable"}),
    ("i am so angry that they cancelled my flight without any notice", {"angry"}),
    ("i feel nervous and scared about the surgery tomorrow", {"nervous", "scared"}),
    ("i love the way he cares for me, he is so sweet and tender", {"love", "sweet", "tender"}),
    ("i was shocked and amazed when i saw the final results", {"shocked", "amazed"}),
    ("i feel so happy and grateful for all the support from my friends today", {"happy", "grateful"}),
    ("i feel hopeless and empty inside", {"hopeless", "empty"}),
    ("i feel so happy and cheerful today", {"happy", "cheerful"}),
    ("i am delighted and feel wonderful about the news", {"delighted", "wonderful"}),
    ("i feel so loving and tender towards my wife", {"loving", "tender"}),
    ("i feel passionate and devoted to him", {"passionate", "devoted"}),
    ("i feel furious and irritated at my rude boss", {"furious", "irritated", "rude"}),
    ("i am so angry and annoyed with them", {"angry", "annoyed"}),
    ("i feel terrified and scared of the dark house", {"terrified", "scared"}),
    ("i feel anxious and afraid about the exam", {"anxious", "afraid"}),
    ("i feel amazed and shocked by the sudden news", {"amazed", "shocked"}),
    ("i was stunned, what a surprising twist", {"stunned,", "surprising"}),
    ("i feel so lonely and sad tonight", {"lonely", "sad"}),
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=str(EMBEDDED_ADAPTER))
    parser.add_argument("--data_dir", default=str(EMOTION_DATA), help="dair-ai/emotion train/validation/test.")
    parser.add_argument("--shifted", default=str(GOEMOTIONS6_DEV),
                        help="The shifted labelled file (GoEmotions dev mapped to the six labels).")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="auto")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto")
    parser.add_argument("--refit", action="store_true",
                        help="Fit the detector again (python -m emotion_app calibrate --detector_only, in a copy "
                        "of the adapter) before measuring: checks that the stored one is reproduced.")
    parser.add_argument("--output", default=None, help="Write the figures here (JSON).")
    return parser.parse_args(argv)


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U)."""
    scores = np.r_[negatives, positives]
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores[np.r_[False, np.diff(scores[order]) == 0]] if len(scores) else []):
        ranks[scores == value] = ranks[scores == value].mean()
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[n_neg:].sum() - n_pos * (n_pos + 1) / 2) / (n_neg * n_pos))


def score_split(engine: EmotionClassifier, path: Path) -> dict:
    data = read_labeled_file(path)
    started = time.perf_counter()
    details = engine.predict_details(list(data["text"]))
    seconds = time.perf_counter() - started
    labels = np.asarray(data["label"])
    return {"probs": details.probabilities, "scores": details.ood_scores, "inside": details.in_distribution,
            "correct": details.probabilities.argmax(1) == labels, "labels": labels, "seconds": seconds, "texts": list(data["text"])}


def estimate(engine: EmotionClassifier, split: dict) -> dict:
    file_estimate = FileEstimate(engine.detector)
    file_estimate.add(split["probs"], split["scores"])
    result = file_estimate.result()
    truth = float(split["correct"].mean())
    return {**result, "truth": truth, "error_points": 100 * (result["estimated_accuracy"] - truth),
            "interval_covers_truth": result["estimated_accuracy_low"] <= truth <= result["estimated_accuracy_high"],
            "mean_confidence": float(split["probs"].max(1).mean())}


def kept(split: dict, threshold: float, honest: bool) -> dict:
    keep = split["probs"].max(1) >= threshold
    if honest:
        keep &= split["inside"]
    return {"kept_share": float(keep.mean()),
            "kept_accuracy": float(split["correct"][keep].mean()) if keep.any() else None}


def review_rules(metrics: dict, splits: dict, estimates: dict) -> dict:
    rules = {}
    for name, honest in (("confidence only", False), ("honest: confidence on in-distribution rows, OOD reviewed", True)):
        threshold = resolve_threshold(metrics, target_accuracy=TARGET, in_distribution_only=honest)
        rules[name] = {"threshold": threshold, **{s: kept(split, threshold, honest) for s, split in splits.items()}}
    honest_rule = rules["honest: confidence on in-distribution rows, OOD reviewed"]
    whole = {s: review_whole_file(estimates[s], honest_rule["threshold"]) for s in splits}
    rules["shipped: the honest rule, and a file with a shift warning goes to review entirely"] = {
        "threshold": honest_rule["threshold"],
        **{s: {"kept_share": 0.0, "kept_accuracy": None} if whole[s] else honest_rule[s] for s in splits}}
    return rules


def labelled_sample(split: dict, sizes=(50, 100, 200), draws: int = 10) -> list[dict]:
    """What the user's own labels give on a shifted file: label n random rows, take the threshold
    for the target from them (review.threshold_from_labels, OOD rows never kept) and apply it to
    the other rows of the file."""
    rows = []
    for n in sizes:
        found, shares, accuracies = 0, [], []
        for draw in range(draws):
            order = np.random.default_rng(draw).permutation(len(split["correct"]))
            labelled, rest = order[:n], order[n:]
            review = threshold_from_labels(split["probs"][labelled], split["labels"][labelled], TARGET,
                                           split["inside"][labelled])
            if review.threshold is None:
                continue
            found += 1
            keep = split["inside"][rest] & (split["probs"][rest].max(1) >= review.threshold)
            shares.append(float(keep.mean()))
            if keep.any():
                accuracies.append(float(split["correct"][rest][keep].mean()))
        rows.append({"labelled_rows": n, "draws": draws, "draws_with_a_threshold": found,
                     "kept_share_mean": float(np.mean(shares)) if shares else 0.0,
                     "kept_accuracy_mean": float(np.mean(accuracies)) if accuracies else None})
    return rows


def false_alarms(engine: EmotionClassifier, split: dict) -> float:
    rng = np.random.default_rng(0)
    alarms = []
    for _ in range(CHUNKS):
        index = rng.choice(len(split["scores"]), CHUNK_ROWS, replace=False)
        chunk = FileEstimate(engine.detector)
        chunk.add(split["probs"][index], split["scores"][index])
        alarms.append(chunk.result()["shift_warning"])
    return float(np.mean(alarms))


def explanations(engine: EmotionClassifier) -> dict:
    """The explanation (analysis.explain) as the app gives it, with the engine's word table
    (engine/words.py: read from the cache or built), and, for comparison, the previous one: the
    drop of the label's probability when the word is left out."""
    building = words.attach(engine)
    if building is not None:
        building.join()
    top, positive, top_before = 0, 0, 0
    for text, emotion_words in CLEAR:
        result = explain(engine, text)
        scores = {piece.strip(): score for piece, score in result["attributions"]}
        top += max(scores, key=scores.get) in emotion_words
        positive += all(scores[word] > 0 for word in emotion_words)
        tokens = text.split()
        label = list(result["probabilities"]).index(result["label"])
        probs = engine.predict_proba([text, *(" ".join(tokens[:i] + tokens[i + 1:]) for i in range(len(tokens)))])
        drops = probs[0, label] - probs[1:, label]
        top_before += tokens[int(drops.argmax())] in emotion_words
    return {"sentences": len(CLEAR), "top_word_is_an_emotion_word": top, "every_emotion_word_positive": positive,
            "before_probability_drop_top_word_is_an_emotion_word": top_before}


def template(split: dict) -> dict:
    """dair-ai's own rows without its "i feel ..." phrasing: how often flagged, how often right."""
    without = np.array([not {"feel", "feeling", "felt"} & set(text.split()) for text in split["texts"]])
    flagged = ~split["inside"]
    return {"test_rows_without_feel": int(without.sum()), "their_accuracy": float(split["correct"][without].mean()),
            "their_flagged_share": float(flagged[without].mean()),
            "accuracy_of_those_flagged": float(split["correct"][without & flagged].mean()),
            "rows_with_feel_flagged_share": float(flagged[~without].mean())}


def cost(engine: EmotionClassifier, split: dict) -> dict:
    """The OOD score's share of the work: its time on the split's features beside the engine's pass."""
    _, features = engine.logits_and_features(split["texts"])
    started = time.perf_counter()
    for _ in range(5):
        engine.detector.score(features)
    score_s = (time.perf_counter() - started) / 5
    rows = len(split["texts"])
    return {"engine_ms_per_row": 1000 * split["seconds"] / rows, "ood_score_us_per_row": 1e6 * score_s / rows,
            "ood_score_share_of_engine": score_s / split["seconds"]}


def refit(adapter: str, data_dir: str, args) -> str:
    from emotion_app.cli import calibrate

    copy = Path(tempfile.mkdtemp(prefix="bench-trust-")) / "adapter"
    shutil.copytree(adapter, copy)
    calibrate.run(calibrate.build_parser().parse_args(
        ["--adapter", str(copy), "--data_dir", data_dir, "--detector_only", "--precision", args.precision,
         "--runtime", args.runtime, "--batch_size", str(APP_BATCH_SIZE)]))
    return str(copy)


def run(args) -> dict:
    adapter = refit(args.adapter, args.data_dir, args) if args.refit else args.adapter
    engine = EmotionClassifier.from_adapter(adapter, quantize=PRECISIONS[args.precision], runtime=args.runtime,
                                            batch_size=APP_BATCH_SIZE)
    if engine.detector is None:
        raise SystemExit(f"error: {adapter} has no shift detector: fit one with python -m emotion_app calibrate "
                         f"--adapter {adapter} --data_dir {args.data_dir} --detector_only")
    paths = {"validation": Path(args.data_dir) / "validation.txt", "test": Path(args.data_dir) / "test.txt",
             "dev": Path(args.shifted)}
    splits = {name: score_split(engine, path) for name, path in paths.items()}
    estimates = {name: estimate(engine, split) for name, split in splits.items()}
    summary = {
        "adapter": adapter, "engine": f"{engine.info['runtime']} {engine.info['precision']}",
        "detector": {k: engine.detector.scalars()[k] for k in ("threshold", "reference_accuracy", "shrinkage")},
        "accuracy": {name: float(split["correct"].mean()) for name, split in splits.items()},
        "ood": {"auroc_dev_vs_test": auroc(splits["test"]["scores"], splits["dev"]["scores"]),
                "auroc_dev_vs_validation": auroc(splits["validation"]["scores"], splits["dev"]["scores"]),
                "flagged": {name: float(1 - split["inside"].mean()) for name, split in splits.items()}},
        "estimates": estimates,
        "test_chunk_false_alarm_rate": false_alarms(engine, splits["test"]),
        "review": review_rules(read_metrics(adapter) or {}, splits, estimates),
        "labels_on_dev": labelled_sample(splits["dev"]),
        "verdicts": {name: " ".join(describe_estimate(e, reviewing=True, all_reviewed=e["shift_warning"]))
                     for name, e in estimates.items()},
        "template": template(splits["test"]),
        "explanations": explanations(engine),
        "cost": cost(engine, splits["test"]),
    }
    summary["review"]["note"] = ("dev: no per-row rule reaches 97% there, so a file with a shift warning keeps no "
                                 "row automatically (see docs/trust.md)")
    return summary


def table(summary: dict) -> str:
    ood, est = summary["ood"], summary["estimates"]
    lines = [f"engine {summary['engine']}; OOD AUROC dev vs test {ood['auroc_dev_vs_test']:.3f}, "
             f"vs validation {ood['auroc_dev_vs_validation']:.3f}; test chunks with a false warning "
             f"{summary['test_chunk_false_alarm_rate']:.1%}",
             "", "| split | accuracy | mean confidence | estimate [interval] | error | flagged OOD | shift warning |",
             "|---|---|---|---|---|---|---|"]
    for name, e in est.items():
        lines.append(f"| {name} | {e['truth']:.1%} | {e['mean_confidence']:.3f} | {e['estimated_accuracy']:.1%} "
                     f"[{e['estimated_accuracy_low']:.1%}, {e['estimated_accuracy_high']:.1%}] | "
                     f"{e['error_points']:+.1f} pts | {ood['flagged'][name]:.1%} | {e['shift_warning']} |")
    lines += ["", f"| rule (target {TARGET:.0%}) | threshold | validation kept @ acc | test kept @ acc | dev kept @ acc |",
              "|---|---|---|---|---|"]
    for name, rule in summary["review"].items():
        if isinstance(rule, dict) and "threshold" in rule:
            cells = [f"{rule[s]['kept_share']:.1%} @ {rule[s]['kept_accuracy']:.1%}" if rule[s]["kept_accuracy"]
                     is not None else "0%" for s in ("validation", "test", "dev")]
            lines.append(f"| {name} | {rule['threshold']:.3f} | " + " | ".join(cells) + " |")
    lines += ["", f"| labelled dev rows (target {TARGET:.0%}) | draws with a threshold | kept of the other rows | "
              "their accuracy |", "|---|---|---|---|"]
    for row in summary["labels_on_dev"]:
        accuracy = "-" if row["kept_accuracy_mean"] is None else f"{row['kept_accuracy_mean']:.1%}"
        lines.append(f"| {row['labelled_rows']} | {row['draws_with_a_threshold']}/{row['draws']} | "
                     f"{row['kept_share_mean']:.1%} | {accuracy} |")
    x, c, t = summary["explanations"], summary["cost"], summary["template"]
    lines += ["", f"test rows without 'feel': {t['test_rows_without_feel']}, accuracy {t['their_accuracy']:.1%}, "
              f"flagged {t['their_flagged_share']:.1%} (those flagged: {t['accuracy_of_those_flagged']:.1%} right); "
              f"rows with it flagged {t['rows_with_feel_flagged_share']:.1%}"]
    lines += ["", f"explanations: top word an emotion word in {x['top_word_is_an_emotion_word']}/{x['sentences']} "
              f"(before: {x['before_probability_drop_top_word_is_an_emotion_word']}), every emotion word positive in "
              f"{x['every_emotion_word_positive']}/{x['sentences']}",
              f"cost: OOD score {c['ood_score_us_per_row']:.1f} us/row beside the engine's {c['engine_ms_per_row']:.2f} "
              f"ms/row ({c['ood_score_share_of_engine']:.2%})"]
    return "\n".join(lines)


def main(argv=None) -> None:
    setup_logging()
    args = parse_args(argv)
    summary = run(args)
    if args.output:
        write_json(Path(args.output), json.loads(json.dumps(summary, default=float)))
    print(table(summary))


if __name__ == "__main__":
    main()
