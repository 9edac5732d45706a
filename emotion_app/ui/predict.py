"""The Predict tab: one text -> one probability per label of the model (gr.Label), the top one in
words ("no clear emotion" when `neutral` wins) and the words behind the answer."""

from __future__ import annotations

import gradio as gr

from emotion_app.engine.classifier import Predictor
from emotion_app.labels import NEUTRAL
from emotion_app.ui import figures
from emotion_app.ui.common import CLASSIFY_BATCH, PREDICT_CONCURRENCY, Limits
from emotion_app.ui.sessions import SessionModels

UNFAMILIAR = ("**Unlike the training data.** This text does not look like the English texts the model "
              "learned from, so its confidence is likely too high: read the text yourself.")
CHECK_UNAVAILABLE = "*The check for text unlike the training data is unavailable for this adapter (no shift detector).*"

EXAMPLES = [
    "i feel so happy and grateful for all the support from my friends today",
    "i am so angry that they cancelled my flight without any notice",
    "i feel lonely and miserable since she moved away",
    "i was shocked and amazed when i saw the final results",
    "i feel nervous and scared about the surgery tomorrow",
    "i love the way he cares for me, he is so sweet and tender",
    "Our meeting is moved to 3pm in room B.",
    "The package was delivered to the front desk on Tuesday.",
    "my flight got cancelled and nobody at the desk would help, unbelievable",
]


class PredictHandlers:
    """The Predict tab's event functions for one classifier."""

    def __init__(self, models: SessionModels, limits: Limits):
        self.models = models
        self.limits = limits

    def predict(self, text: str | None, request: gr.Request = None) -> dict[str, float]:
        """{label: probability}, most probable first (the `predict` API), from the model the
        caller's session uses."""
        return self._predict(self._check_text(text), self.models.classifier(request))[0]

    def classify(self, texts: list[str]) -> list[list[dict]]:
        """The lean `classify` API: one text in, {label: probability} out in label order (plus
        `in_distribution` when the adapter has a shift detector), nothing else computed. Gradio
        hands concurrent calls over together (batch=True); each text still gets its own forward
        pass, because int8 activations are scaled per batch, and a text's answer must not depend
        on whoever else asked at the same moment. A bad text gets {"error": ...} instead of failing
        the other callers' answers. It answers with the app's own model: a batch mixes callers, and
        an adapted model belongs to its session's page."""
        classifier, answers = self.models.default, []
        for text in texts:
            problem = self._text_problem(text)
            if problem:
                answers.append({"error": problem})
                continue
            details = classifier.predict_details([text])
            answer = dict(zip(classifier.labels, details.probabilities[0].tolist()))
            if details.in_distribution is not None:
                answer["in_distribution"] = bool(details.in_distribution[0])
            answers.append(answer)
        return [answers]

    def show(self, text: str | None, request: gr.Request = None) -> tuple:
        """What the page shows for one text, in one event (one round trip instead of three):
        (the probabilities as `predict` returns them, for gr.Label; the top emotion in words with
        whether the text is unlike the training data; the word importances and their note)."""
        text = self._check_text(text)
        classifier = self.models.classifier(request)
        probabilities, familiar = self._predict(text, classifier)
        shown = [probabilities[name] for name in classifier.labels]  # the explanation explains these, not a second pass
        return (probabilities, self.summary(probabilities, familiar), *self.explain(text, request, shown))

    @staticmethod
    def summary(probabilities: dict, familiar: bool | None = True) -> str:
        """The top label in words ("No clear emotion" when it is neutral), with UNFAMILIAR when
        `familiar` is False and CHECK_UNAVAILABLE when it is None (no shift detector)."""
        top, confidence = figures.sorted_probabilities(probabilities)[0]
        if top == NEUTRAL:
            summary = f"### No clear emotion · {confidence:.1%}\nThe model reads this text as neutral."
        else:
            summary = f"### {top} · {confidence:.1%}\nTop answer and its probability."
        if confidence < 0.5:
            summary += " Below 50 %: the model is unsure, read the text yourself."
        note = {False: UNFAMILIAR, None: CHECK_UNAVAILABLE}.get(familiar, "")
        return f"{summary}\n\n{note}" if note else summary

    def _predict(self, text: str, classifier: Predictor) -> tuple[dict[str, float], bool | None]:
        """({label: probability} most probable first, whether the text is like the training data:
        None without a shift detector), from one forward pass of this text alone."""
        from emotion_app.analysis.probabilities import check_probabilities

        details = classifier.predict_details([text])
        labels = classifier.labels
        try:
            probs = check_probabilities(details.probabilities, 1, len(labels), what="the model's probabilities")
        except ValueError as err:
            raise gr.Error(f"{err} The adapter does not fit this app.") from None
        familiar = None if details.in_distribution is None else bool(details.in_distribution[0])
        return dict(figures.sorted_probabilities(dict(zip(labels, probs[0].tolist())))), familiar

    def explain(self, text: str | None, request: gr.Request = None, full: list[float] | None = None) -> tuple[list, str]:
        """(word importances for gr.HighlightedText, a note) for the predicted label; `full`, the
        text's probabilities in label order when they are already known (analysis.explain.explain)."""
        from emotion_app.analysis.explain import explain

        if not text or not text.strip() or len(text) > self.limits.max_text_chars:
            return [], ""
        try:
            result = explain(self.models.classifier(request), text, full=full)
        except ValueError as err:
            return [], f"No word importances: {err}"
        attributions = result["attributions"]
        strongest = max((abs(score) for _, score in attributions), default=0.0)
        top = max(attributions, key=lambda pair: pair[1])
        note = (f"Red words pushed the model towards **{result['label']}**, purple ones away from it: how much "
                "each word moves the log-odds of that answer, averaged over leaving it out of the text and "
                f"reading it alone (strongest word fully coloured; here **{top[0].strip()}**, {top[1]:+.2f}).")
        # gr.HighlightedText colours by the score in [-1, 1]; scale so the strongest word shows clearly
        scale = 1.0 / strongest if strongest > 0 else 1.0
        return [(piece, round(score * scale, 4)) for piece, score in attributions], note

    def _check_text(self, text: str | None) -> str:
        problem = self._text_problem(text)
        if problem:
            raise gr.Error(problem)
        return text

    def _text_problem(self, text: object) -> str:
        """Why `text` cannot be classified here ("" when it can)."""
        if not isinstance(text, str) or not text.strip():
            return "The text is empty: type a sentence (in English) to classify."
        if len(text) > self.limits.max_text_chars:
            return (f"The text has {len(text):,} characters, over the limit of {self.limits.max_text_chars:,} "
                    "here: the model reads only its first few hundred words anyway. Shorten it, or use the "
                    "Batch CSV tab for long texts.")
        return ""


def build(handlers: PredictHandlers) -> None:
    """The Predict tab's components and events (inside a gr.Tab)."""
    with gr.Row():
        with gr.Column(scale=1):
            text = gr.Textbox(label="Text", lines=3, placeholder="e.g. i feel so happy today",
                              max_length=handlers.limits.max_text_chars, elem_id="predict-text")
            button = gr.Button("Classify", variant="primary", elem_id="predict-button")
            gr.Examples(EXAMPLES, inputs=text, label="Examples (click one, then Classify)")
        with gr.Column(scale=1):
            top = gr.Markdown(elem_id="predict-top")
            # gr.Label draws the probabilities as sorted bars in the browser: the server sends the
            # dict, not a plotly figure (whose building and JSON took 11 % of a page answer's CPU).
            probabilities = gr.Label(label="Probabilities", num_top_classes=len(handlers.models.default.labels),
                                     elem_id="predict-label")
    with gr.Accordion("Why? Word importance", open=True):
        words = gr.HighlightedText(label="Word importance for the top answer", elem_id="predict-words",
                                   show_legend=False)
        words_note = gr.Markdown()
    # The page gets everything in one event (one round trip, one queue slot); the explanation is
    # computed only here, so API callers of /predict or /classify never pay for it. "undocumented"
    # lets the load test ask as the page does.
    gr.on([button.click, text.submit], handlers.show, inputs=text,
          outputs=[probabilities, top, words, words_note], api_name="show", api_visibility="undocumented",
          concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY, show_progress="minimal")
    gr.api(handlers.predict, api_name="predict", concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY,
           api_description="Probabilities of the model's labels for one text, most probable first.")
    gr.api(handlers.classify, api_name="classify", batch=True, max_batch_size=CLASSIFY_BATCH,
           concurrency_id="classify", concurrency_limit=1,
           api_description="The calibrated probabilities of one text, {label: p} in the model's label order (and "
           "in_distribution); concurrent calls are answered together.")
