"""End to end in a real browser (Debian chromium via Playwright) against `python app.py`: the
embedded model's four tabs as a user sees them, and a seven-label model's neutral answer. Saves a
screenshot of each tab to docs/screenshots/ (the README shows them)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from app_server import REPO, shared_app

from emotion_app.artifacts import read_labels
from emotion_app.constants import BUNDLED_ADAPTER
from emotion_app.labels import EMOTIONS

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = REPO / "docs" / "screenshots"
WAIT_MS = 120_000  # a model call on a loaded 2-core machine

BATCH_ROWS = [
    ("a1", "i feel so lonely and miserable without her", "mail"),
    ("a2", "i am so happy and thankful for this wonderful day", "chat"),
    ("a3", "", "chat"),
    ("a4", "i am furious, they lied to me again", "form"),
    ("a5", "i feel terrified walking home alone at night", "mail"),
    ("a6", "i was amazed and shocked by the news", "chat"),
    ("a7", "i love him so much, he is so tender and caring", "form"),
    ("a8", "=SUM(A1:A2)", "form"),
]
# Written for these tests: sentences in the training data's style ("i feel ...", as dair-ai/emotion),
# and Reddit-style or plain non-emotional lines, which the shift detector should call unfamiliar.
FAMILIAR = ["i feel so lonely and miserable since she left me", "i am feeling really happy and grateful for my friends today",
            "i feel so angry at the way he treated my sister", "i feel scared and nervous about starting my new job tomorrow",
            "i feel so loved and cared for by my husband", "i feel like i have been so stressed out lately and i cannot sleep",
            "i feel really excited about the trip we are planning", "i feel so happy today",
            "i feel hopeless and empty inside", "i feel amazed by how kind people can be",
            "i feel irritated when people talk loudly on the phone"]
# Unlike any training text (the embedded model is trained on dair-ai tweets and Reddit comments).
UNFAMILIAR = ['java.lang.NullPointerException: Cannot invoke "String.length()" because "s" is null',
              "SKU-44718-BX 12.99 EUR qty 3", "SELECT id, name FROM customers WHERE created_at > '2024-01-01';",
              "Der Zug nach München fährt heute um acht Uhr von Gleis drei ab.",
              "La réunion du conseil municipal aura lieu jeudi prochain à la mairie.",
              "192.168.1.14 255.255.255.0 10.0.0.1 8.8.8.8", "docker run -d -p 8080:80 --name web nginx:1.25",
              "KeyError: 'user_id'", "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }"]
LABELS = read_labels(BUNDLED_ADAPTER)  # the app shows the labels of the model it serves
SHIFT_WARNING = "this file is unlike the training data"
LABELLED = ["i feel so lonely and sad today;sadness", "i am so happy and cheerful;joy",
            "i feel so angry and bitter about it;anger", "i am scared and anxious;fear",
            "i feel loving and tender towards her;love", "i was amazed by the gift;surprise",
            "i feel really happy about it;sadness"]


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module (Playwright's sync API allows one driver at a time)."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(url)
    return page


@pytest.fixture(scope="module")
def page(request, tmp_path_factory, browser):
    app = shared_app(request.config, tmp_path_factory)
    page = open_page(browser, app.url)
    expect(page.locator("#model-info")).to_contain_text("all-MiniLM-L6-v2")
    yield page
    page.context.close()


def upload(page, element: str, path) -> None:
    """Put `path` into the gr.File `element`, clearing a file an earlier step left there first."""
    if page.locator(f"{element} input[type=file]").count() == 0:
        page.locator(f"{element} button[aria-label=Clear]").first.click()
    page.locator(f"{element} input[type=file]").set_input_files(str(path))


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_predict_shows_a_sorted_bar_per_label_and_the_top_emotion(page):
    page.get_by_role("tab", name="Predict").click()
    page.locator("#predict-text textarea").fill("i am so happy and excited, today was a wonderful day")
    page.locator("#predict-button").click()
    expect(page.locator("#predict-top")).to_contain_text("joy")
    bars = page.locator('#predict-label [data-testid$="-confidence-set"]')  # gr.Label's rows
    expect(bars).to_have_count(len(LABELS))
    rows = bars.evaluate_all("els => els.map(e => [e.getBoundingClientRect().top, e.dataset.testid])")
    top_to_bottom = [name.removesuffix("-confidence-set") for _, name in sorted(rows)]
    assert sorted(top_to_bottom) == sorted(LABELS) and top_to_bottom[0] == "joy"  # most probable on top
    expect(page.locator("#predict-words")).to_contain_text("happy")  # word importance filled in
    expect(page.locator("#predict-top")).not_to_contain_text("Unlike the training data")
    screenshot(page, "predict")


def test_predict_says_plainly_when_a_text_is_unlike_the_training_data(page):
    page.get_by_role("tab", name="Predict").click()
    page.locator("#predict-text textarea").fill(UNFAMILIAR[6])
    page.locator("#predict-button").click()
    expect(page.locator("#predict-top")).to_contain_text("Unlike the training data")
    page.locator("#predict-text textarea").fill("i feel so happy today")
    page.locator("#predict-button").click()
    expect(page.locator("#predict-top")).to_contain_text("joy")
    expect(page.locator("#predict-top")).not_to_contain_text("Unlike the training data")


def label_file(page, path, texts):
    """Upload a one-column table of `texts` in the Batch tab and label it; the summary."""
    pd.DataFrame({"comment": texts}).to_csv(path, index=False)
    page.get_by_role("tab", name="Batch CSV").click()
    upload(page, "#batch-file", path)
    expect(page.locator("#batch-notes")).to_contain_text(f"{len(texts)} rows")
    page.locator("#batch-button").click()
    summary = page.locator("#batch-summary")
    expect(summary).to_contain_text(f"of {len(texts)} rows")
    return summary


def test_batch_warns_about_a_file_unlike_the_training_data_and_not_about_one_like_it(page, tmp_path):
    summary = label_file(page, tmp_path / "reddit.csv", UNFAMILIAR)
    expect(summary).to_contain_text("Estimated accuracy on this file")
    expect(summary).to_contain_text(SHIFT_WARNING)
    summary = label_file(page, tmp_path / "diary.csv", FAMILIAR)
    expect(summary).to_contain_text("Estimated accuracy on this file")
    expect(summary).not_to_contain_text(SHIFT_WARNING)


def test_batch_csv_scores_every_row_and_offers_the_result(page, tmp_path):
    source = tmp_path / "feedback.csv"
    pd.DataFrame(BATCH_ROWS, columns=["id", "message", "channel"]).to_csv(source, index=False)
    page.get_by_role("tab", name="Batch CSV").click()
    upload(page, "#batch-file", source)
    expect(page.locator("#batch-notes")).to_contain_text("message")  # the detected text column
    page.locator("#batch-button").click()
    expect(page.locator("#batch-summary")).to_contain_text("Scored")
    expect(page.locator("#batch-counts .barlayer .point").first).to_be_visible()
    with page.expect_download() as download:
        page.locator("#batch-result a").first.click()
    saved = tmp_path / "result.csv"
    download.value.save_as(saved)
    out = pd.read_csv(saved, dtype=str, keep_default_na=False)
    assert {"in_distribution", "ood_score"} <= set(out.columns)  # the embedded adapter has a shift detector
    assert out["id"].tolist() == [row[0] for row in BATCH_ROWS]
    assert out["channel"].tolist() == [row[2] for row in BATCH_ROWS]
    assert out.loc[1, "emotion"] == "joy" and out.loc[2, "emotion"] == ""
    assert out.loc[7, "message"] == "'=SUM(A1:A2)"
    screenshot(page, "batch")


def test_evaluation_shows_the_confusion_matrix_and_a_live_run(page, tmp_path):
    page.get_by_role("tab", name="Evaluation").click()
    expect(page.locator("#eval-summary")).to_contain_text("accuracy")
    confusion = page.locator("#eval-confusion")
    expect(confusion.locator(".heatmaplayer")).to_have_count(1)
    assert confusion.locator(".xtick text").all_text_contents() == list(LABELS)
    expect(page.locator("#eval-per-class")).to_contain_text("macro average")
    screenshot(page, "evaluation")
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("\n".join(LABELLED) + "\n", encoding="utf-8")
    upload(page, "#eval-file", labelled)
    page.locator("#eval-file-button").click()
    expect(page.locator("#eval-summary")).to_contain_text("Live evaluation on labelled.txt (7 rows)")
    expect(page.locator("#eval-rows")).to_contain_text("i feel really happy about it")
    # drill down into one cell: true sadness, predicted joy holds only the mislabelled-looking row
    for dropdown, label in (("#eval-true", "sadness"), ("#eval-predicted", "joy")):
        page.locator(f"{dropdown} input").click()
        page.locator(dropdown).get_by_role("option", name=label, exact=True).click()
    expect(page.locator("#eval-rows")).to_contain_text("i feel really happy about it")
    expect(page.locator("#eval-rows")).not_to_contain_text("i feel so lonely and sad today")
    screenshot(page, "drilldown")


REVIEW_ROWS = [f"i feel {word} about the {thing}" for word, thing in (
    ("so happy", "trip"), ("really sad", "news"), ("scared", "storm"), ("angry", "delay"), ("amazed", "gift"),
    ("tender", "letter"), ("hopeful", "plan"), ("bored", "meeting"), ("nervous", "exam"), ("grateful", "help"),
    ("lonely", "weekend"), ("furious", "bill"))]


def test_review_corrects_rows_adapts_and_this_session_uses_the_new_model(page, tmp_path):
    source = tmp_path / "to-review.csv"
    pd.DataFrame({"id": range(1, len(REVIEW_ROWS) + 1), "text": REVIEW_ROWS}).to_csv(source, index=False)
    page.get_by_role("tab", name="Batch CSV").click()
    upload(page, "#batch-file", source)
    expect(page.locator("#batch-notes")).to_contain_text("12 rows")
    page.locator("#batch-button").click()
    expect(page.locator("#batch-summary")).to_contain_text("Scored 12 of 12 rows")
    page.get_by_role("tab", name="Review & adapt").click()
    page.locator("#review-start").click()
    expect(page.locator("#review-card")).to_contain_text("in review order")
    for i in range(10):  # the least confident first; correct ten of them (the minimum)
        page.locator("#review-label").get_by_label(EMOTIONS[i % len(EMOTIONS)], exact=True).check()
        page.locator("#review-next").click()
        expect(page.locator("#review-count")).to_contain_text(f"{i + 1} row(s) corrected")
    page.locator("#adapt-run").click()
    expect(page.locator("#adapt-summary")).to_contain_text("held-out corrections", timeout=600_000)
    expect(page.locator("#adapt-summary")).to_contain_text("→")
    page.locator("#adapt-use").click()
    expect(page.locator("#session-model")).to_contain_text("adapted from")
    expect(page.locator("#session-model")).to_contain_text("10 corrections")
    screenshot(page, "adapt")
    page.get_by_role("tab", name="Predict").click()
    page.locator("#predict-text textarea").fill("i feel so happy about the trip")
    page.locator("#predict-button").click()
    # the adapted model answers this session (its first call loads it: an ONNX export of its own)
    expect(page.locator("#predict-top")).to_contain_text("·", timeout=WAIT_MS)


def answers_neutral(adapter: Path, directory: Path) -> Path:
    """A copy of a seven-label adapter whose head prefers `neutral` for every text (its bias raised)."""
    import shutil

    from safetensors.torch import load_file, save_file

    from emotion_app.artifacts import read_labels

    copy = Path(shutil.copytree(adapter, directory / "always-neutral"))
    weights = load_file(copy / "adapter_model.safetensors")
    (key,) = [k for k in weights if k.endswith("classifier.bias")]
    weights[key][read_labels(copy).index("neutral")] += 50.0
    save_file(weights, copy / "adapter_model.safetensors")
    return copy


@pytest.fixture(scope="module")
def neutral_page(seven_label_adapter, tmp_path_factory, browser):
    """A page of an app whose model has seven labels and answers neutral."""
    from app_server import start_app

    directory = tmp_path_factory.mktemp("neutral-app")
    app = start_app(directory, adapter=answers_neutral(seven_label_adapter, directory))
    try:
        page = open_page(browser, app.url)
        yield page
        page.context.close()
    finally:
        app.stop()


def test_a_neutral_answer_shows_as_a_bar_a_plain_headline_and_a_row_of_the_download(neutral_page, tmp_path):
    page = neutral_page
    page.get_by_role("tab", name="Predict").click()
    page.locator("#predict-text textarea").fill("Our meeting is moved to 3pm in room B.")
    page.locator("#predict-button").click()
    expect(page.locator("#predict-top")).to_contain_text("No clear emotion")
    bars = page.locator('#predict-label [data-testid$="-confidence-set"]')
    expect(bars).to_have_count(len(EMOTIONS) + 1)
    expect(page.locator('#predict-label [data-testid="neutral-confidence-set"]')).to_be_visible()

    source = tmp_path / "plain.csv"
    pd.DataFrame({"message": ["Our meeting is moved to 3pm in room B.", "Invoice 4471 is attached."]}).to_csv(
        source, index=False)
    page.get_by_role("tab", name="Batch CSV").click()
    upload(page, "#batch-file", source)
    page.locator("#batch-button").click()
    expect(page.locator("#batch-summary")).to_contain_text("Scored")
    with page.expect_download() as download:
        page.locator("#batch-result a").first.click()
    saved = tmp_path / "result.csv"
    download.value.save_as(saved)
    out = pd.read_csv(saved, dtype=str, keep_default_na=False)
    assert out["emotion"].tolist() == ["neutral", "neutral"]
    probabilities = out[[f"p_{name}" for name in (*EMOTIONS, "neutral")]].astype(float)
    assert (probabilities.idxmax(axis=1) == "p_neutral").all()
