"""Per-session models: one visitor's adapted model never reaches another, and nothing piles up."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from emotion_app.ui.sessions import SessionModels


class Named:
    def __init__(self, name: str):
        self.name = name


def request(session: str):
    return SimpleNamespace(session_hash=session)


@pytest.fixture
def models(tmp_path):
    loads = []

    def load(directory: str):
        loads.append(directory)
        return Named(directory)

    registry = SessionModels(Named("default"), tmp_path / "adapted", load=load, max_loaded=1, max_kept=2)
    registry.loads = loads
    return registry


def adapted(models: SessionModels, session: str) -> str:
    key, directory = models.new_directory(session)
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text("{}", encoding="utf-8")
    models.register(session, key, directory, f"adapted by {session}")
    return key


def test_an_adapted_model_serves_only_the_session_that_switched_to_it(models):
    key = adapted(models, "alice")
    assert models.classifier(request("alice")).name == "default"  # registered, not in use yet
    models.use("alice", key)
    assert models.classifier(request("alice")).name.endswith(key)
    assert models.classifier(request("bob")).name == "default"
    assert models.classifier(None).name == "default"
    assert models.lineage(request("alice")) == "adapted by alice" and models.lineage(request("bob")) == ""
    with pytest.raises(ValueError, match="not this session"):
        models.use("bob", key)  # bob cannot borrow alice's model
    models.use("alice", None)
    assert models.classifier(request("alice")).name == "default"


def test_loaded_models_and_kept_directories_stay_bounded(models):
    first, second = adapted(models, "a"), adapted(models, "b")
    models.use("a", first)
    models.use("b", second)
    models.classifier(request("a"))
    models.classifier(request("b"))  # unloads a's (max_loaded 1) ...
    models.classifier(request("a"))  # ... which loads again from disk
    assert len(models.loads) == 3
    third = adapted(models, "c")  # max_kept 2: the oldest (a's) is deleted, and a falls back
    assert not any(p.name.endswith(first) for p in models.root.iterdir())
    assert models.classifier(request("a")).name == "default"
    assert {p.name.split("-")[-1] for p in models.root.iterdir()} == {second, third}


def test_ending_a_session_deletes_its_models(models):
    key = adapted(models, "alice")
    other = adapted(models, "bob")
    models.use("alice", key)
    models.end_session("alice")
    assert models.classifier(request("alice")).name == "default"
    assert models.latest("alice") is None and models.latest("bob").key == other
    assert [p.name.split("-")[-1] for p in models.root.iterdir()] == [other]


def test_the_states_that_hold_a_visitors_table_expire(tmp_path):
    import gradio as gr
    from support import FakePredictor

    from emotion_app.ui.layout import build_demo
    from emotion_app.ui.sessions import STATE_TTL_S

    demo = build_demo(FakePredictor(), output_dir=tmp_path)
    states = [block for block in demo.blocks.values() if isinstance(block, gr.State)]
    expiring = [state for state in states if state.time_to_live == STATE_TTL_S]
    assert len(expiring) == 2  # the Batch tab's scored table and the review built from it
    assert all(state.value is None for state in expiring)
