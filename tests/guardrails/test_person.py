"""PERSON: the shipped statistical model together with the rules, in informal and business text."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from signalvault.guardrails.pii import PiiDetector
from signalvault.guardrails.pii_names import load_lexicon
from signalvault.guardrails.pii_person import PersonModel, load_weights
from tests.shared_data import ROOT, eval_dir


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector(types=["PERSON"])


def names(detector: PiiDetector, text: str) -> list[str]:
    return [text[f.start : f.end] for f in detector(text)]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("omg ed sheeran is playing glasgow tonight", "ed sheeran"),
        ("cant believe Marcus Rashford missed that pen lol", "Marcus Rashford"),
        ("happy bday Priya!! have the best day x", "Priya"),
        ("Please forward the signed contract to Anna Kowalski.", "Anna Kowalski"),
        ("Hi, I'm Tomasz from procurement, can you check the PO?", "Tomasz"),
        ("Summarise the notes Dr. Okafor sent after the ward round.", "Dr. Okafor"),
        ("So proud of our captain tonight #MarcusWilliams", "MarcusWilliams"),
    ],
)
def test_finds_names_in_chat_and_business_text(detector, text, name):
    assert any(name in found or found in name for found in names(detector, text))


@pytest.mark.parametrize(
    "text",
    [
        "@maria_g see you at 5",  # an account name, not a person's name (WNUT-17 convention)
        "mail jane.doe@example.com about it",  # part of an address
        "Ignore the INFO lines, GET requests are fine.",
        "We moved the Kubernetes cluster to Frankfurt on Monday.",
        "@dataclass\nclass Point:\n    x: int",
        "great game last night #StanleyCup",  # run together, but a first name and a thing
    ],
)
def test_leaves_handles_code_and_everyday_capitals(detector, text):
    assert names(detector, text) == []


def test_scores_are_probabilities_and_the_threshold_cuts():
    text = "lol Priya said she'd bring the snacks"
    low = PiiDetector(types=["PERSON"], threshold=0.0)(text)
    assert low and all(0.0 <= f.score <= 1.0 for f in low)
    assert PiiDetector(types=["PERSON"], threshold=1.0)(text) == []


def test_shipped_weights_record_their_data_and_licences():
    weights, meta = load_weights()
    assert len(weights) > 1000
    licences = meta["licences"]
    assert isinstance(licences, dict)
    assert all("CC-BY-4.0" in licence for licence in licences.values())
    data = meta["data"]
    assert isinstance(data, dict)
    assert all("sha256" in entry for name, entry in data.items() if name.endswith(".jsonl"))


def test_model_reads_only_candidate_tokens():
    """Lower-case everyday words are never scored: the cost follows candidates, not length."""
    model = PersonModel(load_lexicon())
    scored = [token.word for token, _ in model.token_scores("the quick brown fox " * 50)]
    assert scored == []


def _script(path: str) -> ModuleType:
    """A module of training/ or bench/ (scripts, not a package), loaded by path."""
    for folder in ("training", "bench"):
        if str(ROOT / folder) not in sys.path:
            sys.path.insert(0, str(ROOT / folder))
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fresh9_is_never_trained_on_and_disjoint_from_earlier_slices():
    """The held-out slice the PERSON figures are measured on stays out of training; the slices
    whose scores were read before (fresh to fresh8) are training data and never part of it."""
    data = eval_dir()
    heldout = _script("bench/heldout.py")
    train = _script("training/train_person.py")
    trained = {rec["text"] for rec in train.corpus_records(data)}
    held = [
        rec["text"]
        for source in heldout.FRESH_SOURCES
        for rec in heldout.fresh_records(data, source, "fresh9")
    ]
    assert len(held) > 500
    assert not trained & set(held)
    assert {heldout.fresh_slice(text) for text in held} == {"fresh9"}
