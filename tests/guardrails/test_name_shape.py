"""The name-likeness scorer the PERSON model reads (pii_name_shape.py): shipped, offline,
deterministic, and it reads names from their letters."""

from __future__ import annotations

from signalvault.guardrails.pii_name_shape import STEPS, grams, load, shipped


def test_grams_mark_the_word_edges():
    assert grams("ana") == ["^a", "an", "na", "a$", "^an", "ana", "na$", "^ana", "ana$"]


def test_loads_offline_with_its_provenance():
    scorer, meta = load()
    assert meta["trained_by"] == "training/train_name_shape.py"
    assert meta["held_out_tenth"]["auc"] > 0.9  # names it never saw against words it never saw
    assert scorer.probability("dikembe") == shipped().probability("dikembe")


def test_orders_obvious_names_above_obvious_words():
    scorer = shipped()
    names = ["dikembe", "kowalski", "okafor", "siobhan", "giuseppe", "priyanka"]
    words = ["weekend", "birthday", "tonight", "thanks", "meeting", "something"]
    assert min(map(scorer.probability, names)) > max(map(scorer.probability, words))
    assert all(scorer.step(n) >= 3 for n in names)
    assert all(scorer.probability(w) < 0.5 for w in words)


def test_features_are_steps_and_cached():
    first = shipped().features("okafor", "Xx", "none")
    assert first == [f"nl={STEPS - 1}", f"nl={STEPS - 1}|Xx", f"nlg={STEPS - 1}|none"]
    assert shipped().features("okafor", "Xx", "none") is first
    assert shipped().features("weekend", "Xx", "eng")[0] == "nl=0"
