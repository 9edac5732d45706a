"""Do explanations point at the words that carry the emotion? Of the real sentences a model gives
an emotion (not neutral), the share whose top word (the word whose removal lowers that emotion most:
analysis/explain.py) is a content word, not a function word like "the".

    python benchmarks/bench_explain.py --adapters models/minilm-emotion-lora outputs/minilm-v3 \\
        --output docs/bench_explain.json

The sentences are written for this benchmark in the styles people bring (support chats, reviews,
messages, posts, notes), not taken from a data set; they are kept here so that every model is read on
the same ones. A model without a neutral answer has to push plain sentences towards some emotion,
and the word that pushes hardest is then often a function word.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from _common import setup_logging

from emotion_app.analysis.explain import explain, top_words
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.labels import NEUTRAL

logger = logging.getLogger("bench_explain")

SENTENCES = (
    "my flight got cancelled and nobody at the desk would help, unbelievable",
    "ugh, my landlord STILL hasn't fixed the heating. third week now.",
    "Our meeting is moved to 3pm in room B.",
    "lol",
    "The package arrived two days late and the box was crushed.",
    "Thank you so much for the flowers, they made my whole week!",
    "I can't stop shaking, the biopsy results come in tomorrow.",
    "We adopted a puppy today and the kids haven't stopped smiling.",
    "He forgot my birthday again. Not even a text.",
    "Wait, you're telling me the store closed for good?? Since when?",
    "Grandpa passed away last night. I keep picking up the phone to call him.",
    "Please find attached the invoice for March.",
    "I've been on hold for 90 minutes, this is a joke.",
    "Honestly the best customer service I've had in years.",
    "There's someone walking around outside my window at 2am.",
    "Can't believe I got the job!!! Starting Monday.",
    "The new update deleted all my saved drafts. Thanks a lot.",
    "I miss the way our house smelled when mom baked on Sundays.",
    "Reminder: the office is closed on Friday for maintenance.",
    "My hands are sweating, I have to give the speech in ten minutes.",
    "You are the kindest person I know and I adore you.",
    "Whoa, I did not expect that ending at all.",
    "Battery lasts about six hours with the screen on.",
    "My sister finally beat cancer, five years clear today.",
    "The neighbours are blasting music again at midnight, I'm losing it.",
    "I feel so alone in this new city, I don't know anyone.",
    "The train leaves from platform 4 at 7:15.",
    "They fired him over a rumour, it's completely unfair.",
    "Holding my daughter for the first time, I just cried.",
    "I'm terrified the layoffs will hit our team next.",
    "Got the keys to our first home today, we did it!",
    "The doctor said the scan was clear, what a relief.",
    "My best friend moved abroad and the weekends feel empty.",
    "Whoever keeps stealing my lunch from the fridge, stop.",
    "No way, the concert sold out in two minutes?!",
    "Add two cups of flour and stir until smooth.",
    "I love waking up next to you every morning.",
    "That dog barking at night makes me so anxious I can't sleep.",
    "Our team lost the final in the last second, gutted.",
    "The report is due on the 14th, please send your sections by then.",
)

FUNCTION_WORDS = frozenset("""
a an the this that these those my your his her its our their mine yours hers ours theirs
i me you he him she it we us they them myself yourself himself herself itself ourselves themselves
who whom whose which what whoever whatever someone anyone everyone nobody no not nor none
and or but so yet if then than because as while when where why how though although unless until since
of in on at to for from by with about into onto over under after before during through between without
again against among around off out up down upon within along across behind beyond near
is am are was were be been being have has had having do does did doing will would shall should
can could may might must ought s t d ll m re ve isn aren wasn weren hasn haven hadn doesn don didn
won wouldn shan shouldn can't cannot couldn mustn mightn needn
just also too very really all any both each few more most other some such only own same there here
""".split())


def is_content_word(word: str) -> bool:
    """A word that is not a function word, once stripped of punctuation and lower-cased."""
    core = word.strip(".,!?;:'\"()[]").lower().split("'")[0]
    return bool(core) and core not in FUNCTION_WORDS


def explain_sentences(adapter: str) -> dict:
    """{"adapter", "labels", "share_content_top_word", "emotional_rows", "rows": [(text, label, top word)]}."""
    classifier = EmotionClassifier.from_adapter(adapter)
    rows = []
    for text in SENTENCES:
        explained = explain(classifier, text)
        word = top_words(explained["attributions"], k=1)[0][0]
        rows.append((text, explained["label"], word))
    emotional = [word for _, label, word in rows if label != NEUTRAL]
    share = sum(map(is_content_word, emotional)) / len(emotional) if emotional else None
    return {"adapter": adapter, "labels": list(classifier.labels), "share_content_top_word": share,
            "emotional_rows": len(emotional), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", nargs="+", required=True, help="Adapter directories (or Hub ids).")
    parser.add_argument("--output", default=None, help="Also write the figures as JSON here.")
    args = parser.parse_args(argv)
    results = [explain_sentences(adapter) for adapter in args.adapters]
    print(f"| adapter | top word a content word ({len(SENTENCES)} sentences) |")
    print("|---|---|")
    for result in results:
        share = result["share_content_top_word"]
        print(f"| {result['adapter']} | {'–' if share is None else f'{100 * share:.1f} %'} of "
              f"{result['emotional_rows']} given an emotion |")
        for text, label, word in result["rows"]:
            logger.info("%s: %s <- %r (%s)", result["adapter"], label, word, text)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
