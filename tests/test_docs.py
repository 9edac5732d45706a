"""The docs say what the code does. Every module path, dotted name, command and flag named in
README.md, docs/*.md, experiments/README.md, requirements*.txt and the docstrings and comments of the
code must exist; the few constants the prose restates must equal the code's; and no note says which
working session did what (git keeps the history). Each failure names file:line, what was found and
what exists instead."""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import io
import json
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import REPO

PACKAGE = "emotion_app"
SUBPACKAGES = ("analysis", "cli", "data", "engine", "publish", "train", "ui")
# Modules that no longer exist, and where their contents went: a mention of one is always stale.
REMOVED_MODULES = {
    "modeling": "emotion_app/engine/adapters.py (reading, merging) and emotion_app/train/lora.py",
    "inference": "emotion_app/engine/classifier.py and emotion_app/engine/loading.py",
    "onnx_runtime": "emotion_app/engine/onnx.py",
    "distributed": "emotion_app/engine/ray.py",
    "tabular": "emotion_app/data/tables/",
    "commands": "emotion_app/cli/options.py",
}
# A dotted name whose last part is one of these is a file name (labels.json, train.py), not an attribute.
FILE_SUFFIXES = {"py", "json", "md", "txt", "csv", "tsv", "jsonl", "xlsx", "xls", "parquet", "npz", "onnx",
                 "safetensors", "png", "log", "yaml", "toml", "zip", "gz", "html"}
# Module names that snippets also use as variable names (classifier.predict_proba, ray.init) or that
# name metrics.json entries (adaptation.output_dir): a short `name.attr` with one of these is not read
# as a module reference (written from its subpackage, train.adaptation.adapt, it is).
VARIABLE_LIKE = {"adapt", "adaptation", "batch", "calibrate", "card", "classifier", "common", "evaluate", "evaluation",
                 "export", "features", "hub", "onnx", "options", "predict", "ray", "score", "soup",
                 "tables", "tokenizer", "train", "words"}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
SESSION_NOTE = re.compile(r"\bsessions?[ _-]?\d+", re.IGNORECASE)


@dataclass(frozen=True)
class Text:
    """A piece of documentation: the text and where it starts."""

    path: str  # relative to the repository
    line: int
    text: str

    def where(self, offset: int = 0) -> str:
        return f"{self.path}:{self.line + self.text.count(chr(10), 0, offset)}"


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def doc_files() -> list[Path]:
    return sorted([REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("experiments/*.md"),
                   *REPO.glob("requirements*.txt")])


def code_files() -> list[Path]:
    return sorted([*(REPO / PACKAGE).rglob("*.py"), REPO / "app.py", REPO / "train.py",
                   *REPO.glob("benchmarks/*.py"), *REPO.glob("experiments/*.py")])


def python_texts(path: Path) -> list[Text]:
    """The docstrings and comments of a Python file."""
    source = path.read_text(encoding="utf-8")
    texts = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                texts.append(Text(_rel(path), first.lineno, first.value.value))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            texts.append(Text(_rel(path), token.start[0], token.string))
    return texts


@functools.cache
def all_texts() -> tuple[Text, ...]:
    texts = [Text(_rel(path), 1, path.read_text(encoding="utf-8")) for path in doc_files()]
    for path in code_files():
        texts.extend(python_texts(path))
    return tuple(texts)


def command_texts() -> list[Text]:
    """Where a command line can be: fenced blocks and inline code of the Markdown files (an inline
    span may wrap), every docstring and comment, the requirements files' comments."""
    texts = []
    for text in all_texts():
        if not text.path.endswith(".md"):
            texts.append(text)
            continue
        for match in re.finditer(r"^```[^\n]*\n(.*?)^```", text.text, re.MULTILINE | re.DOTALL):
            texts.append(Text(text.path, text.line + text.text.count("\n", 0, match.start(1)), match.group(1)))
        prose = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text.text,
                       flags=re.MULTILINE | re.DOTALL)
        for match in re.finditer(r"`([^`]+)`", prose):
            texts.append(Text(text.path, text.line + prose.count("\n", 0, match.start(1)),
                              re.sub(r"\s+", " ", match.group(1))))
    return texts


# ---------------------------------------------------------------------------------------------
# what exists


@functools.cache
def repo_files() -> tuple[str, ...]:
    skip = {".git", "__pycache__", "outputs", ".pytest_cache", "node_modules"}
    return tuple(sorted(_rel(p) for p in REPO.rglob("*")
                        if not skip.intersection(p.relative_to(REPO).parts) and p.is_file()))


@functools.cache
def modules() -> tuple[str, ...]:
    """Every module and package of emotion_app, from its files (folders without __init__.py too)."""
    names = {PACKAGE}
    for path in (REPO / PACKAGE).rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        for length in range(2, len(parts) + 1):
            names.add(".".join(parts[:length]))
    return tuple(sorted(n for n in names if not n.endswith(("__init__", "__main__"))))  # __main__ would run


@functools.cache
def leaf_modules() -> dict[str, list[str]]:
    """Last part of a module name -> the modules of that name (analysis.review -> review)."""
    leaves: dict[str, list[str]] = {}
    for name in modules():
        leaves.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    return leaves


@functools.cache
def definitions() -> dict[str, list[str]]:
    """Public name -> the modules that define it (imported once, only to say what exists instead)."""
    found: dict[str, list[str]] = {}
    for name in modules():
        for attr, value in vars(importlib.import_module(name)).items():
            if getattr(value, "__module__", name) == name and not attr.startswith("__"):
                found.setdefault(attr, []).append(name)
    return found


def instead_of_path(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    stem = name.removesuffix(".py")
    if stem in REMOVED_MODULES:
        return REMOVED_MODULES[stem]
    same_name = [f for f in repo_files() if f.rsplit("/", 1)[-1] == name]
    close = difflib.get_close_matches(path, repo_files(), n=3, cutoff=0.6)
    return ", ".join(same_name or close) or "nothing of that name"


def resolve(dotted: str) -> str | None:
    """None when `dotted` is a module or a module's attribute; else what is wrong and what exists instead."""
    parts = dotted.split(".")
    for length in range(len(parts), 0, -1):
        module_name = ".".join(parts[:length])
        if module_name not in modules():
            continue
        value = importlib.import_module(module_name)
        for position, attr in enumerate(parts[length:], start=length):
            if not hasattr(value, attr):
                owner = ".".join(parts[:position])
                elsewhere = [f"{m}.{attr}" for m in definitions().get(attr, [])]
                close = difflib.get_close_matches(attr, [a for a in dir(value) if not a.startswith("__")], n=3)
                instead = elsewhere or [f"{owner}.{a}" for a in close] or ["nothing of that name"]
                return f"{owner} has no attribute {attr!r}; exists: {', '.join(instead)}"
            value = getattr(value, attr)
        return None
    return f"no module {parts[0]}.{parts[1] if len(parts) > 1 else ''}; modules: " + \
        ", ".join(difflib.get_close_matches(dotted, modules(), n=3) or modules()[:1])


# ---------------------------------------------------------------------------------------------
# (a) paths


PATH_IN_PACKAGE = re.compile(r"(?<![\w./-])emotion_app/(?:[\w.-]+/)*(?:[\w-]+\.py\b|(?=[\s`'\")\],:;]|$))")
SHORT_PATH = re.compile(rf"(?<![\w./-])(?:{'|'.join(SUBPACKAGES)})/(?:\w+/)*\w+\.py\b")
REPO_PATH = re.compile(r"(?<![\w./-])(?:benchmarks|experiments|docs|configs|tests)/[\w./-]*\w")


def test_every_named_path_exists():
    problems = []
    for text in all_texts():
        for pattern, prefix in ((PATH_IN_PACKAGE, ""), (SHORT_PATH, f"{PACKAGE}/"), (REPO_PATH, "")):
            for match in pattern.finditer(text.text):
                path = prefix + match.group(0)
                if "*" in path or "<" in path or (REPO / path).exists() or written_by_command(text, match.start()):
                    continue
                problems.append(f"{text.where(match.start())}: {match.group(0)!r} does not exist; "
                                f"exists: {instead_of_path(path)}")
    assert not problems, "stale paths:\n" + "\n".join(problems)


def written_by_command(text: Text, offset: int) -> bool:
    """A path right after an output option (`--output docs/x.json`) is what the command will write."""
    return re.search(r"(?:--output|--json|--output_dir|--report|-o)[ =]$", text.text[max(0, offset - 16):offset]) is not None


def test_every_markdown_link_resolves():
    problems = []
    for path in doc_files():
        if path.suffix != ".md":
            continue
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\]\(([^)\s]+)\)", text):
            target, _, anchor = match.group(1).partition("#")
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            line = f"{_rel(path)}:{1 + text.count(chr(10), 0, match.start())}"
            document = (path.parent / target).resolve() if target else path
            if not document.exists():
                problems.append(f"{line}: link to {target!r}, which does not exist; exists: "
                                f"{instead_of_path(_rel(path.parent / target) if target else target)}")
            elif anchor and document.suffix == ".md" and anchor not in anchors(document):
                problems.append(f"{line}: link to #{anchor} in {_rel(document)}, which has no such heading; "
                                f"headings: {', '.join(difflib.get_close_matches(anchor, anchors(document), n=3))}")
    assert not problems, "broken links:\n" + "\n".join(problems)


def anchors(document: Path) -> list[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    headings = re.findall(r"^#+\s+(.*)$", document.read_text(encoding="utf-8"), re.MULTILINE)
    return [re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings]


# ---------------------------------------------------------------------------------------------
# (b) dotted names


FULL_NAME = re.compile(r"(?<![\w./-])emotion_app(?:\.[A-Za-z_]\w*)+")
SHORT_NAME = re.compile(r"(?<![\w./-])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)")
CLASS_NAME = re.compile(r"(?<![\w./-])([A-Z][a-z]\w*[a-z]\w*)(?:\.[A-Za-z_]\w*)+")  # EmotionClassifier.from_adapter
PATH_NAME = re.compile(rf"(?<![\w./-])(?:emotion_app/)?((?:{'|'.join(SUBPACKAGES)})(?:/\w+)+)\.([A-Za-z_]\w*)")  # engine/ood.score


def dotted_references(text: Text):
    """(offset, as written, full dotted name) of each emotion_app name in the text: written in full,
    from a subpackage (analysis.shift.FileEstimate), a module name (review.drilldown), a module's
    path (analysis/review.needs_review) or a class of the package (EmotionClassifier.from_adapter)."""
    for match in FULL_NAME.finditer(text.text):
        if match.group(0).rsplit(".", 1)[-1] not in FILE_SUFFIXES:
            yield match.start(), match.group(0), match.group(0)
    for match in SHORT_NAME.finditer(text.text):
        head, rest = match.group(1), match.group(2)
        if head == PACKAGE or rest.rsplit(".", 1)[-1] in FILE_SUFFIXES:
            continue
        if head in SUBPACKAGES or head in leaf_modules() and head not in VARIABLE_LIKE:
            candidates = [f"{PACKAGE}.{head}"] if head in SUBPACKAGES else leaf_modules()[head]
            yield match.start(), match.group(0), [c + rest for c in candidates]
        elif head in REMOVED_MODULES:
            yield match.start(), match.group(0), None
    for match in CLASS_NAME.finditer(text.text):
        if match.group(1) in definitions():
            yield match.start(), match.group(0), [f"{m}.{match.group(0)}" for m in definitions()[match.group(1)]]
    for match in PATH_NAME.finditer(text.text):
        if match.group(2) not in FILE_SUFFIXES:
            yield match.start(), match.group(0), f"{PACKAGE}.{match.group(1).replace('/', '.')}.{match.group(2)}"


def test_every_dotted_name_resolves():
    problems = []
    for text in all_texts():
        for offset, written, full in dotted_references(text):
            if full is None:
                problems.append(f"{text.where(offset)}: {written!r} names a module that no longer exists; "
                                f"its contents are in {REMOVED_MODULES[written.split('.')[0]]}")
                continue
            reasons = [resolve(name) for name in ([full] if isinstance(full, str) else full)]
            if all(reasons):
                problems.append(f"{text.where(offset)}: {written!r} does not resolve: {reasons[0]}")
    assert not problems, "stale names:\n" + "\n".join(problems)


def test_removed_module_files_are_not_named():
    """`inference.py`, `onnx_runtime.py`, ...: bare file names of modules that no longer exist."""
    pattern = re.compile(rf"(?<![\w/.-])({'|'.join(REMOVED_MODULES)})\.py\b")
    problems = [f"{text.where(m.start())}: {m.group(0)!r} no longer exists; its contents are in "
                f"{REMOVED_MODULES[m.group(1)]}"
                for text in all_texts() for m in pattern.finditer(text.text)]
    assert not problems, "stale module files:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# (c) commands and their flags


COMMAND = re.compile(r"(?:python -m emotion_app|emotion-app) ([\w-]+)|python -m (emotion_app\.[\w.]+)"
                     r"|python (train\.py|app\.py|(?:benchmarks|experiments)/\w+\.py)")
COMMAND_END = re.compile(r"#|&&|\|\||;|\||`|\n")


def command_lines():
    """(where, program, the options written after it) for every command in a code span or docstring."""
    for text in command_texts():
        joined = text.text.replace("\\\n", " ")
        for match in COMMAND.finditer(joined):
            program = match.group(1) or match.group(2) or match.group(3)
            rest = joined[match.end():]
            rest = rest[:COMMAND_END.search(rest).start()] if COMMAND_END.search(rest) else rest
            flags = [re.sub(r"[\],.)]+$", "", token.split("=")[0]) for token in rest.replace("[", " ").split()
                     if re.match(r"--[A-Za-z]", token)]
            offset = text.text.find(match.group(0)) if "\\\n" in text.text else match.start()
            yield text.where(max(offset, 0)), program, flags


@functools.cache
def command_options(program: str) -> frozenset[str] | str:
    """The options a program accepts, or why it is not a program."""
    from emotion_app.cli import COMMANDS

    if program in ("--help", "-h"):  # `emotion-app --help`: the dispatcher's own listing
        return frozenset()
    if program in ("train", "train.py"):
        from emotion_app.train.arguments import train_parser

        return _option_strings(train_parser())
    if program == "app.py":
        spec = importlib.util.spec_from_file_location("docs_checked_app", REPO / "app.py")
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        return _option_strings(app.build_parser())
    if program.endswith(".py"):
        return script_options(REPO / program) if (REPO / program).exists() else \
            f"no script {program}; scripts: {instead_of_path(program)}"
    if program.startswith(f"{PACKAGE}."):
        path = REPO / (program.replace(".", "/") + ".py")
        if not path.exists() or '__name__ == "__main__"' not in path.read_text(encoding="utf-8"):
            return (f"{program} is not a runnable module; the commands are `python -m emotion_app <command>` "
                    f"with <command> one of {', '.join(COMMANDS)}")
        return command_options(program.removeprefix(f"{PACKAGE}.cli."))
    if program not in COMMANDS:
        close = difflib.get_close_matches(program, COMMANDS, n=1)
        return f"no command {program!r}; commands: {', '.join(close or COMMANDS)}"
    return _option_strings(importlib.import_module(COMMANDS[program][0]).build_parser())


def _option_strings(parser) -> frozenset[str]:
    return frozenset(option for action in parser._actions for option in action.option_strings)


def script_options(path: Path) -> frozenset[str]:
    """The options a benchmark or experiment script declares (its add_argument calls), read without running it."""
    options = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("add_argument", "add_option"):
            options.update(arg.value for arg in node.args
                           if isinstance(arg, ast.Constant) and str(arg.value).startswith("-"))
    return frozenset(options | {"-h", "--help"})


def test_every_command_and_flag_exists():
    problems = []
    for where, program, flags in command_lines():
        options = command_options(program)
        if isinstance(options, str):
            problems.append(f"{where}: {options}")
            continue
        for flag in flags:
            if flag not in options:
                close = difflib.get_close_matches(flag, sorted(options), n=3)
                problems.append(f"{where}: {program} has no option {flag}; "
                                f"{'close: ' + ', '.join(close) if close else 'see its --help'}")
    assert not problems, "stale commands:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# (d) no history notes


def history_files() -> list[Path]:
    return sorted({*doc_files(), *code_files(), *REPO.glob("tests/**/*.py"), *REPO.glob("configs/**/*.json")})


def test_no_session_notes_anywhere():
    problems = []
    for path in history_files():
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            problems += [f"{_rel(path)}:{number}: {m.group(0)!r}: say what is measured or decided, not when "
                         "(git keeps the history)" for m in SESSION_NOTE.finditer(line)]
    problems += [f"{name}: a file named after a working session; name it after what it holds"
                 for name in repo_files() if SESSION_NOTE.search(name.rsplit("/", 1)[-1])]
    assert not problems, "history notes:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# (e) constants the prose restates


def _attr(module: str, name: str):
    return lambda: getattr(importlib.import_module(module), name)


def _parser_default(command: str, option: str):
    return lambda: importlib.import_module(f"emotion_app.cli.{command}").build_parser().get_default(option)


def embedded_temperature() -> float:
    return json.loads((REPO / "models" / "minilm-emotion-lora" / "calibration.json").read_text())["temperature"]


def tab_count() -> int:
    return len(re.findall(r"\bgr\.Tab\(", (REPO / PACKAGE / "ui" / "layout.py").read_text(encoding="utf-8")))


def same_figure(written: str, expected: float) -> bool:
    """The prose's figure equals the code's to the decimals written (0.83 restates 0.8305)."""
    text = written.replace(",", "").replace(" ", "").replace("\u202f", "")
    if text.lower() in NUMBER_WORDS:
        return NUMBER_WORDS[text.lower()] == expected
    decimals = len(text.partition(".")[2])
    return abs(float(text) - expected) <= 0.5 * 10 ** -decimals + 1e-12


NUMBER = r"\**(\d[\d,  ]*\d|\d)\**"
WORD = r"(\d+|one|two|three|four|five|six|seven|eight)"
ADAPTATION = "emotion_app.train.adaptation"
# (what, the code's value, patterns whose first group is the prose's figure); one of them must match somewhere
RESTATED = [
    ("adaptation's cross-validation threshold (train.adaptation.CV_BELOW)", _attr(ADAPTATION, "CV_BELOW"),
     [rf"cross-validation below {NUMBER}", rf"cross-validates below {NUMBER}",
      rf"below {NUMBER}\s+corrections,? (?:5-fold )?cross-validation", rf"from {NUMBER} on,? (?:it holds out|one held-out)",
      rf"holds out 20 % from {NUMBER} on"]),
    ("the fewest corrections adaptation takes (train.adaptation.MIN_CORRECTIONS)",
     _attr(ADAPTATION, "MIN_CORRECTIONS"), [rf"at least {NUMBER} corrections"]),
    ("replayed rows per correction (train.adaptation.REPLAY_PER_CORRECTION)",
     _attr(ADAPTATION, "REPLAY_PER_CORRECTION"), [rf"`{NUMBER} × corrections`", rf"replays {NUMBER} per correction"]),
    ("neutral texts replayed per correction (train.adaptation.NEUTRAL_PER_CORRECTION)",
     _attr(ADAPTATION, "NEUTRAL_PER_CORRECTION"),
     [rf"replays {WORD} plain texts? labelled neutral per\s+correction", rf"labelled neutral, {WORD} per correction"]),
    ("epochs of the distillation fallback (train.adaptation.DISTILL_EPOCHS)", _attr(ADAPTATION, "DISTILL_EPOCHS"),
     [rf"trains {NUMBER} epochs instead of \d+"]),
    ("epochs with replay (train.adaptation.REPLAY_EPOCHS)", _attr(ADAPTATION, "REPLAY_EPOCHS"),
     [rf"trains \d+ epochs instead of {NUMBER}"]),
    ("the app's upload limit in MB (constants.MAX_UPLOAD_MB)", _attr("emotion_app.constants", "MAX_UPLOAD_MB"),
     [rf"`--max_mb` \(default {NUMBER} MB"]),
    ("the app's upload limit in rows (constants.MAX_UPLOAD_ROWS)", _attr("emotion_app.constants", "MAX_UPLOAD_ROWS"),
     [rf"`--max_rows` \(default {NUMBER}\)"]),
    ("the number of the app's tabs (gr.Tab in ui/layout.py)", tab_count, [rf"\b{WORD} tabs\b"]),
    ("adapted models kept on disk (ui.sessions.MAX_KEPT)", _attr("emotion_app.ui.sessions", "MAX_KEPT"),
     [rf"at most {NUMBER} are kept on disk"]),
    ("requests the app's queue holds (ui.common.QUEUE_SIZE)", _attr("emotion_app.ui.common", "QUEUE_SIZE"),
     [rf"up to {NUMBER} requests waiting"]),
    ("single texts answered at once (ui.common.PREDICT_CONCURRENCY)",
     _attr("emotion_app.ui.common", "PREDICT_CONCURRENCY"),
     [rf"answers single texts {WORD} at a time", rf"with {WORD} page answers at a time"]),
    ("the scorer's default chunk (score --chunk_rows)", _parser_default("score", "chunk_rows"),
     [rf"`--chunk_rows` rows at a time \(default {NUMBER}"]),
    ("the text length the model reads (analysis.predictions.MODEL_MAX_CHARS)",
     _attr("emotion_app.analysis.predictions", "MODEL_MAX_CHARS"), [rf"texts longer than {NUMBER}\s+characters"]),
    ("the embedded adapter's temperature (its calibration.json)", embedded_temperature,
     [r"calibrated \(T = (\d\.\d+)\)", r"T = (\d\.\d+) for the embedded model",
      r"temperature fitted on validation\s+\(T = (\d\.\d+)\)"]),
]


@pytest.mark.parametrize("what, value, patterns", RESTATED, ids=[r[0].split(" (")[0] for r in RESTATED])
def test_restated_constants_equal_the_code(what, value, patterns):
    expected = value()
    problems, seen = [], set()
    for text in all_texts():
        for pattern in patterns:
            for match in re.finditer(pattern, text.text, re.IGNORECASE):
                seen.add(pattern)
                if not same_figure(match.group(1), expected):
                    problems.append(f"{text.where(match.start())}: {match.group(0)!r} says {match.group(1)}; "
                                    f"the code has {expected:g}")
    assert seen, f"the docs no longer state {what} in any of {patterns}: update RESTATED in tests/test_docs.py"
    assert not problems, f"{what}:\n" + "\n".join(problems)
