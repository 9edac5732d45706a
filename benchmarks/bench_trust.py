"""Honest confidence, measured: every figure of docs/trust.md in one seeded command, for an adapter
with the six emotions or with a seventh label, neutral.

    python benchmarks/bench_trust.py --output docs/bench_trust.json
    python benchmarks/bench_trust.py --refit   # fit the detector again first (in a copy), then measure
    python benchmarks/bench_trust.py --max_rows 200 --output /tmp/trust_smoke.json   # a quick check only

On the embedded models/minilm-emotion-lora with the engine the app runs (int8 ONNX Runtime on CPU;
--precision/--runtime choose another). The labelled files: dair-ai/emotion validation and test
(../shared/data/emotion, the training data's kind), GoEmotions dev mapped to the six emotions
(../shared/data/goemotions-6/dev.csv, Reddit comments: familiar to a model trained on GoEmotions
train too, shifted for one trained on dair-ai alone) and ISEAR (../shared/data/isear/isear.csv,
people describing a situation: a domain never trained on; only its rows of labels the model has,
anger, fear, joy and sadness). The files have no neutral rows, so for a model with that label a
`neutral` answer counts as wrong (the estimate estimates the share of rows the model gets right),
and the share of rows called neutral is reported per file. Measured:
- the OOD score: AUROC of dev, ISEAR and the written texts below against test, dev against
  validation, the share of each file flagged;
- the file estimate (analysis.shift.FileEstimate) against the truth on each file, with its
  interval and shift warning;
- the warning where it should not fire: 200 random 100-row chunks of test, and, for a model whose
  training files include GoEmotions, dev as a whole and in chunks; where it should: WRITTEN_OOD,
  texts unlike any training text written here (log lines, other languages, numbers and codes,
  code), each kind scored as one file; ISEAR is reported as measured, with no expectation;
- the 97% review rule: the threshold `--target_accuracy 0.97` gives (the test curve; with the
  detector the honest rule, OOD rows always reviewed, and a file with a shift warning reviewed
  entirely) and what it keeps, at what accuracy, on each file; confidence alone for comparison;
- what labels of the user's own give on dev and ISEAR: a threshold from n labelled rows, applied
  to the rest;
- explanations: on 19 clear sentences, whether an emotion word gets the top score;
- cost: the OOD score's time per row beside the engine's (the same run, so the share holds even
  on a busy machine; the engine's rows/s are benchmarks/bench_inference.py's business).
`--max_rows N` reads the first N rows of each labelled file: a check that the script runs, not figures.
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
from _common import EMBEDDED_ADAPTER, EMOTION_DATA, GOEMOTIONS6_DEV, ISEAR, rows_of_labels, setup_logging

from emotion_app.analysis.explain import explain
from emotion_app.analysis.review import (
    resolve_threshold,
    review_whole_file,
    threshold_from_labels,
)
from emotion_app.analysis.shift import FileEstimate, describe_estimate
from emotion_app.artifacts import read_labels, read_metrics, write_json
from emotion_app.constants import PRECISIONS, RUNTIMES
from emotion_app.data.labelled import encode, read_labeled_file
from emotion_app.engine import words
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.labels import NEUTRAL

logger = logging.getLogger("bench_trust")
TARGET = 0.97
APP_BATCH_SIZE = 32  # the app's (from_adapter's default): int8 activations are quantized per batch
CHUNKS, CHUNK_ROWS = 200, 100
LABELLED_SIZES = (50, 100, 200)  # labelled rows a user gives (labelled_sample)
GOEMOTIONS_HINT = "goemotions"  # a training file whose path holds this makes Reddit text familiar
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
# Texts unlike any training text (dair-ai tweets, Reddit comments), written for this benchmark: the
# shift warning should fire on each kind, scored as one file.
WRITTEN_OOD = {
    "log lines and stack traces": (
        "2024-03-11 14:02:17,331 INFO [main] o.a.c.c.StandardService - Starting service [Tomcat]",
        "Traceback (most recent call last):",
        '  File "/usr/lib/python3.11/site-packages/requests/adapters.py", line 486, in send',
        'java.lang.NullPointerException: Cannot invoke "String.length()" because "s" is null',
        "\tat com.example.billing.InvoiceService.total(InvoiceService.java:142)",
        'E0311 14:02:18.204 kubelet[1123]: Failed to pull image "registry.local/api:1.4.2": rpc error: code = NotFound',
        "Mar 11 14:02:19 web01 sshd[20331]: Accepted publickey for deploy from 10.0.4.17 port 52144 ssh2",
        '10.0.4.17 - - [11/Mar/2024:14:02:19 +0000] "GET /api/v2/orders?page=3&limit=50 HTTP/1.1" 200 5123',
        "WARN  [pool-3-thread-7] c.z.h.pool.HikariPool - HikariPool-1 - Thread starvation or clock leap detected",
        "segfault at 0000000000000018 ip 00007f3a2c1d4e9b sp 00007ffd5f3b8a40 error 4 in libc.so.6",
        "npm ERR! code ERESOLVE npm ERR! ERESOLVE unable to resolve dependency tree",
        "KeyError: 'user_id'",
        "[2024-03-11 14:02:20.118] DEBUG cache.redis: SET user:8f3a2b ttl=3600 -> OK (0.42 ms)",
        "panic: runtime error: index out of range [5] with length 5 goroutine 1 [running]: main.main() /app/main.go:27",
    ),
    "non-English sentences": (
        "Der Zug nach München fährt heute um acht Uhr von Gleis drei ab.",
        "La réunion du conseil municipal aura lieu jeudi prochain à la mairie.",
        "El supermercado de la esquina cierra los domingos a las dos de la tarde.",
        "Il museo resterà chiuso per lavori di restauro fino alla fine di marzo.",
        "A biblioteca da universidade empresta até cinco livros por aluno.",
        "De gemeente legt volgend jaar een nieuw fietspad aan langs het kanaal.",
        "Pociąg do Krakowa odjeżdża z peronu drugiego o godzinie siódmej.",
        "Kirjasto on avoinna arkisin kello yhdeksästä kahdeksaan.",
        "Otobüs her sabah saat yedide köyün meydanından kalkıyor.",
        "Affären på hörnet säljer färskt bröd varje morgon.",
        "Zítra bude v celé zemi zataženo a místy slabě sněží.",
        "Kantor pos di kota kami buka setiap hari kecuali hari Minggu.",
        "Поезд отправляется с третьей платформы в восемь часов.",
        "明日の会議は午後三時から第二会議室で行います。",
        "Το μουσείο είναι κλειστό κάθε Δευτέρα.",
    ),
    "numbers and product codes": (
        "SKU-44718-BX 12.99 EUR qty 3",
        "4 8 15 16 23 42 108 815 1623",
        "INV-2023-00817 | 2023-11-04 | 1,245.00 | NET30",
        "0.317 0.442 0.918 0.003 0.771 0.256",
        "P/N 74HC595D-T, 2500 pcs/reel, lot 2231A",
        "ISBN 978-3-16-148410-0 / EAN 4006381333931",
        "ORD#558201 ORD#558202 ORD#558203 ORD#558204",
        "192.168.1.14 255.255.255.0 10.0.0.1 8.8.8.8",
        "A4 210x297 mm, 80 g/m2, 500 sh, RAL 9010",
        "+49 30 1234567, +33 1 42 68 53 00, +1 212 555 0199",
        "X7Z-99Q 3.5A 12V DC IP67 M12x1",
        "2,4,6,8,10,12,14,16,18,20,22,24",
        "BX-200/40 BX-200/60 BX-250/40 BX-250/60 BX-300/80",
        "lat 52.5200 lon 13.4050 alt 34 m",
    ),
    "code and markup": (
        "SELECT id, name FROM customers WHERE created_at > '2024-01-01' ORDER BY id;",
        '<div class="row"><span id="total">0</span></div>',
        '{"id": 42, "status": "shipped", "items": [3, 7, 9]}',
        "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
        "def area(r): return 3.14159 * r ** 2",
        'git commit -m "bump version to 2.4.1" && git push origin main',
        "docker run -d -p 8080:80 --name web nginx:1.25",
        "x = np.linspace(0, 1, 101); y = np.sin(2 * np.pi * x)",
        '#include <stdio.h> int main(void) { printf("%d\\n", 42); }',
        "CREATE INDEX idx_orders_date ON orders (order_date);",
    ),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=str(EMBEDDED_ADAPTER))
    parser.add_argument("--data_dir", default=str(EMOTION_DATA), help="dair-ai/emotion train/validation/test.")
    parser.add_argument("--goemotions", "--shifted", dest="goemotions", default=str(GOEMOTIONS6_DEV),
                        help="GoEmotions dev mapped to the six emotions (Reddit comments, labelled).")
    parser.add_argument("--isear", default=str(ISEAR),
                        help="ISEAR (text,label); only the rows of labels the model has are read.")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="auto")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto")
    parser.add_argument("--refit", action="store_true",
                        help="Fit the detector again (python -m emotion_app calibrate --detector_only, in a copy "
                        "of the adapter) before measuring: checks that the stored one is reproduced.")
    parser.add_argument("--max_rows", type=int, default=None,
                        help=f"Read the first N rows of each labelled file (at least {CHUNK_ROWS}): a quick check "
                        "that the script runs, not the figures.")
    parser.add_argument("--output", default=None, help="Write the figures here (JSON).")
    args = parser.parse_args(argv)
    if args.max_rows is not None and args.max_rows < CHUNK_ROWS:
        parser.error(f"--max_rows is {args.max_rows}: expected at least {CHUNK_ROWS} (the shift warning is checked on "
                     f"{CHUNK_ROWS}-row chunks). Raise it, or leave it out for the full files.")
    return args


# --- reading and scoring ---------------------------------------------------------------------------

def read_file(path: Path, labels: tuple[str, ...], max_rows: int | None) -> tuple[list[str], np.ndarray]:
    """(texts, label ids in `labels`) of a labelled file, its first `max_rows` rows when given."""
    data = read_labeled_file(path, labels=labels)
    rows = len(data) if max_rows is None else min(max_rows, len(data))
    return list(data["text"][:rows]), np.asarray(data["label"][:rows])


def read_isear(path: Path, labels: tuple[str, ...], max_rows: int | None) -> tuple[list[str], np.ndarray]:
    """ISEAR's rows whose label the model has (anger, fear, joy, sadness), first `max_rows` of them."""
    rows, aside = rows_of_labels(path, labels)
    if not rows.texts:
        raise SystemExit(f"error: {path} has no row of the model's labels {list(labels)}: expected ISEAR's "
                         f"anger, fear, joy and sadness rows, found labels {list(aside)[:10]}. Check --isear.")
    logger.info("%s: %d rows of the model's labels (%s read), %d of other labels left out", path, len(rows.texts),
                "all" if max_rows is None else f"the first {min(max_rows, len(rows.texts))}", sum(aside.values()))
    data = encode(rows.select(range(len(rows.texts))[:max_rows]), labels)
    return list(data["text"]), np.asarray(data["label"])


def score_rows(engine: EmotionClassifier, texts: list[str], labels: np.ndarray | None = None) -> dict:
    """One engine pass over `texts` as one file: probabilities, OOD scores and flags, the time it
    took, and with `labels` which rows are right."""
    started = time.perf_counter()
    details = engine.predict_details(texts)
    seconds = time.perf_counter() - started
    split = {"probs": details.probabilities, "scores": details.ood_scores, "inside": details.in_distribution,
             "seconds": seconds, "texts": texts}
    if labels is not None:
        split.update(labels=labels, correct=details.probabilities.argmax(1) == labels)
    return split


def neutral_share(engine: EmotionClassifier, split: dict) -> float | None:
    """The share of rows called neutral, None for a model without that label."""
    if NEUTRAL not in engine.labels:
        return None
    return float((split["probs"].argmax(1) == engine.labels.index(NEUTRAL)).mean())


def trained_on_goemotions(adapter: str) -> bool:
    """Whether the adapter's training files (metrics.json, training.extra_train_files) include GoEmotions."""
    files = ((read_metrics(adapter) or {}).get("training") or {}).get("extra_train_files") or []
    return any(GOEMOTIONS_HINT in str(path).lower() for path in files)


# --- the estimate and the warning ------------------------------------------------------------------

def file_estimate(engine: EmotionClassifier, split: dict, index: np.ndarray | None = None) -> dict:
    """FileEstimate.result() of the split's rows (`index`: some of them)."""
    rows = slice(None) if index is None else index
    result = FileEstimate(engine.detector)
    result.add(split["probs"][rows], split["scores"][rows])
    return result.result()


def estimate(engine: EmotionClassifier, split: dict) -> dict:
    result = file_estimate(engine, split)
    truth = float(split["correct"].mean())
    return {**result, "truth": truth, "error_points": 100 * (result["estimated_accuracy"] - truth),
            "interval_covers_truth": result["estimated_accuracy_low"] <= truth <= result["estimated_accuracy_high"],
            "mean_confidence": float(split["probs"].max(1).mean()), "neutral_share": neutral_share(engine, split)}


def chunk_warning_rate(engine: EmotionClassifier, split: dict) -> float:
    """The share of CHUNKS random CHUNK_ROWS-row chunks of the split (seeded) with a shift warning."""
    rng = np.random.default_rng(0)
    alarms = [file_estimate(engine, split, rng.choice(len(split["scores"]), CHUNK_ROWS, replace=False))["shift_warning"]
              for _ in range(CHUNKS)]
    return float(np.mean(alarms))


def written_files(engine: EmotionClassifier) -> dict:
    """Each kind of WRITTEN_OOD scored as one file: its rows, flagged share, estimate and warning."""
    results = {}
    for kind, texts in WRITTEN_OOD.items():
        split = score_rows(engine, list(texts))
        result = file_estimate(engine, split)
        results[kind] = {"rows": len(texts), "flagged_share": float(1 - split["inside"].mean()),
                         "shift_warning": result["shift_warning"],
                         "estimated_accuracy": result["estimated_accuracy"],
                         "neutral_share": neutral_share(engine, split), "scores": split["scores"]}
    return results


def warning_checks(engine: EmotionClassifier, splits: dict, estimates: dict, written: dict,
                   familiar_reddit: bool) -> dict:
    """The shift warning where it should not fire, where it should, and on ISEAR as measured."""
    dev = {"shift_warning": estimates["dev"]["shift_warning"],
           "flagged_share": estimates["dev"]["out_of_distribution_share"],
           "chunk_warning_rate": chunk_warning_rate(engine, splits["dev"])}
    should_not = {"test_chunks": {"chunks": CHUNKS, "rows": CHUNK_ROWS,
                                  "warning_rate": chunk_warning_rate(engine, splits["test"])}}
    should = {kind: {k: v for k, v in result.items() if k != "scores"} for kind, result in written.items()}
    (should_not if familiar_reddit else should)["dev"] = dev
    files = {"dev": dev["shift_warning"], **{kind: result["shift_warning"] for kind, result in written.items()}}
    return {"goemotions_in_training": familiar_reddit, "should_not_fire": should_not, "should_fire": should,
            "measured": {"isear": {"shift_warning": estimates["isear"]["shift_warning"],
                                   "flagged_share": estimates["isear"]["out_of_distribution_share"]}},
            "files_as_expected": {name: fired == (name in should) for name, fired in files.items()}}


# --- review, labels, explanations, cost --------------------------------------------------------------

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


def labelled_sample(split: dict, labels: tuple[str, ...], draws: int = 10) -> list[dict]:
    """What the user's own labels give on a file: label n random rows, take the threshold for the
    target from them (review.threshold_from_labels, OOD rows never kept) and apply it to the other
    rows of the file. Sizes that leave no other row (a --max_rows check) are skipped."""
    rows = []
    for n in (size for size in LABELLED_SIZES if size < len(split["correct"])):
        found, shares, accuracies = 0, [], []
        for draw in range(draws):
            order = np.random.default_rng(draw).permutation(len(split["correct"]))
            labelled, rest = order[:n], order[n:]
            review = threshold_from_labels(split["probs"][labelled], split["labels"][labelled], TARGET,
                                           split["inside"][labelled], names=labels)
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
    return {"test_rows_without_feel": int(without.sum()), "their_accuracy": _mean(split["correct"][without]),
            "their_flagged_share": _mean(flagged[without]),
            "accuracy_of_those_flagged": _mean(split["correct"][without & flagged]),
            "rows_with_feel_flagged_share": _mean(flagged[~without])}


def _mean(values: np.ndarray) -> float | None:
    """The mean, None for no values (a --max_rows check may leave a group empty)."""
    return float(values.mean()) if len(values) else None


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


# --- the run -------------------------------------------------------------------------------------------

def refit(adapter: str, data_dir: str, args) -> str:
    from emotion_app.cli import calibrate

    copy = Path(tempfile.mkdtemp(prefix="bench-trust-")) / "adapter"
    shutil.copytree(adapter, copy)
    calibrate.run(calibrate.build_parser().parse_args(
        ["--adapter", str(copy), "--data_dir", data_dir, "--detector_only", "--precision", args.precision,
         "--runtime", args.runtime, "--batch_size", str(APP_BATCH_SIZE)]))
    return str(copy)


def load_engine(adapter: str, args) -> tuple[EmotionClassifier, tuple[str, ...]]:
    """The app's engine for the adapter, with its labels (labels.json); SystemExit without a detector."""
    engine = EmotionClassifier.from_adapter(adapter, quantize=PRECISIONS[args.precision], runtime=args.runtime,
                                            batch_size=APP_BATCH_SIZE)
    if engine.detector is None:
        raise SystemExit(f"error: {adapter} has no shift detector: fit one with python -m emotion_app calibrate "
                         f"--adapter {adapter} --data_dir {args.data_dir} --detector_only")
    labels = read_labels(adapter)
    if tuple(engine.labels) != tuple(labels):
        raise SystemExit(f"error: the engine's outputs are {list(engine.labels)}, {adapter}'s labels.json says "
                         f"{list(labels)}: expected the same labels in the same order. Export the adapter again.")
    return engine, labels


def score_files(engine: EmotionClassifier, labels: tuple[str, ...], args) -> dict:
    """The labelled files, each scored as one file: validation, test, dev (GoEmotions-6), isear."""
    data_dir = Path(args.data_dir)
    files = {"validation": read_file(data_dir / "validation.txt", labels, args.max_rows),
             "test": read_file(data_dir / "test.txt", labels, args.max_rows),
             "dev": read_file(Path(args.goemotions), labels, args.max_rows),
             "isear": read_isear(Path(args.isear), labels, args.max_rows)}
    splits = {}
    for name, (texts, ids) in files.items():
        logger.info("scoring %s: %d rows", name, len(texts))
        splits[name] = score_rows(engine, texts, ids)
    return splits


def ood_figures(splits: dict, written: dict) -> dict:
    test = splits["test"]["scores"]
    written_scores = np.concatenate([result["scores"] for result in written.values()])
    return {"auroc_dev_vs_test": auroc(test, splits["dev"]["scores"]),
            "auroc_dev_vs_validation": auroc(splits["validation"]["scores"], splits["dev"]["scores"]),
            "auroc_isear_vs_test": auroc(test, splits["isear"]["scores"]),
            "auroc_written_vs_test": auroc(test, written_scores),
            "flagged": {name: float(1 - split["inside"].mean()) for name, split in splits.items()}}


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


def run(args) -> dict:
    adapter = refit(args.adapter, args.data_dir, args) if args.refit else args.adapter
    engine, labels = load_engine(adapter, args)
    splits = score_files(engine, labels, args)
    estimates = {name: estimate(engine, split) for name, split in splits.items()}
    written = written_files(engine)
    checks = warning_checks(engine, splits, estimates, written, trained_on_goemotions(adapter))
    summary = {
        "adapter": adapter, "labels": list(labels), "max_rows": args.max_rows,
        "engine": f"{engine.info['runtime']} {engine.info['precision']}",
        "detector": {k: engine.detector.scalars()[k] for k in ("threshold", "reference_accuracy", "shrinkage")},
        "accuracy": {name: float(split["correct"].mean()) for name, split in splits.items()},
        "ood": ood_figures(splits, written),
        "estimates": estimates,
        "test_chunk_false_alarm_rate": checks["should_not_fire"]["test_chunks"]["warning_rate"],
        "shift_warning_checks": checks,
        "review": review_rules(read_metrics(adapter) or {}, splits, estimates),
        "labels_on_dev": labelled_sample(splits["dev"], labels),
        "labels_on_isear": labelled_sample(splits["isear"], labels),
        "verdicts": {name: " ".join(describe_estimate(e, reviewing=True, all_reviewed=e["shift_warning"]))
                     for name, e in estimates.items()},
        "template": template(splits["test"]),
        "explanations": explanations(engine),
        "cost": cost(engine, splits["test"]),
    }
    summary["review"]["note"] = ("shipped rule: a file with a shift warning keeps no row automatically "
                                 "(analysis.review.review_whole_file; see docs/trust.md)")
    return summary


# --- the report -----------------------------------------------------------------------------------------

def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def estimates_table(summary: dict) -> list[str]:
    ood, est = summary["ood"], summary["estimates"]
    lines = [f"engine {summary['engine']}, labels {', '.join(summary['labels'])}; OOD AUROC against test: dev "
             f"{ood['auroc_dev_vs_test']:.3f}, ISEAR {ood['auroc_isear_vs_test']:.3f}, written texts "
             f"{ood['auroc_written_vs_test']:.3f}; dev against validation {ood['auroc_dev_vs_validation']:.3f}",
             "", "| file | accuracy | called neutral | mean confidence | estimate [interval] | error | flagged OOD | "
             "shift warning |", "|---|---|---|---|---|---|---|---|"]
    for name, e in est.items():
        lines.append(f"| {name} | {e['truth']:.1%} | {_share(e['neutral_share'])} | {e['mean_confidence']:.3f} | "
                     f"{e['estimated_accuracy']:.1%} [{e['estimated_accuracy_low']:.1%}, "
                     f"{e['estimated_accuracy_high']:.1%}] | {e['error_points']:+.1f} pts | "
                     f"{ood['flagged'][name]:.1%} | {e['shift_warning']} |")
    return lines


def warnings_table(checks: dict) -> list[str]:
    test = checks["should_not_fire"]["test_chunks"]
    lines = ["", f"shift warning (GoEmotions in training: {checks['goemotions_in_training']}): test "
             f"{test['chunks']} random {test['rows']}-row chunks with a warning {test['warning_rate']:.1%}",
             "", "| file | should fire | flagged OOD | warning | as expected | warning on 100-row chunks |",
             "|---|---|---|---|---|---|"]
    for should, cases in (("no", checks["should_not_fire"]), ("yes", checks["should_fire"])):
        for name, case in cases.items():
            if name == "test_chunks":
                continue
            chunks = _share(case.get("chunk_warning_rate"))
            lines.append(f"| {name} | {should} | {case['flagged_share']:.1%} | {case['shift_warning']} | "
                         f"{checks['files_as_expected'][name]} | {chunks} |")
    isear = checks["measured"]["isear"]
    lines.append(f"| isear | (measured) | {isear['flagged_share']:.1%} | {isear['shift_warning']} | - | - |")
    return lines


def review_table(summary: dict) -> list[str]:
    files = list(summary["estimates"])
    lines = ["", f"| rule (target {TARGET:.0%}) | threshold | " + " | ".join(f"{s} kept @ acc" for s in files) + " |",
             "|---|---|" + "---|" * len(files)]
    for name, rule in summary["review"].items():
        if isinstance(rule, dict) and "threshold" in rule:
            cells = [f"{rule[s]['kept_share']:.1%} @ {rule[s]['kept_accuracy']:.1%}" if rule[s]["kept_accuracy"]
                     is not None else "0%" for s in files]
            lines.append(f"| {name} | {rule['threshold']:.3f} | " + " | ".join(cells) + " |")
    return lines


def labels_table(summary: dict) -> list[str]:
    lines = []
    for name in ("dev", "isear"):
        lines += ["", f"| labelled {name} rows (target {TARGET:.0%}) | draws with a threshold | "
                  "kept of the other rows | their accuracy |", "|---|---|---|---|"]
        for row in summary[f"labels_on_{name}"]:
            lines.append(f"| {row['labelled_rows']} | {row['draws_with_a_threshold']}/{row['draws']} | "
                         f"{row['kept_share_mean']:.1%} | {_share(row['kept_accuracy_mean'])} |")
    return lines


def table(summary: dict) -> str:
    x, c, t = summary["explanations"], summary["cost"], summary["template"]
    lines = [*estimates_table(summary), *warnings_table(summary["shift_warning_checks"]), *review_table(summary),
             *labels_table(summary)]
    lines += ["", f"test rows without 'feel': {t['test_rows_without_feel']}, accuracy {_share(t['their_accuracy'])}, "
              f"flagged {_share(t['their_flagged_share'])} (those flagged: {_share(t['accuracy_of_those_flagged'])} "
              f"right); rows with it flagged {_share(t['rows_with_feel_flagged_share'])}"]
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
        logger.info("wrote %s", args.output)
    print(table(summary))  # the benchmark's result


if __name__ == "__main__":
    main()
