"""The name-likeness scorer the PERSON model reads (pii_name_shape.py): shipped, offline,
deterministic, and it reads names from their letters."""

from __future__ import annotations

from signalvault.guardrails.pii_name_shape import FEATURE_CACHE, STEPS, grams, load, shipped


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
    assert first == (f"nl={STEPS - 1}", f"nl={STEPS - 1}|Xx", f"nlg={STEPS - 1}|none")
    assert shipped().features("okafor", "Xx", "none") is first
    assert shipped().features("weekend", "Xx", "eng")[0] == "nl=0"


def test_words_of_one_step_share_their_features():
    """Memory: a word's cache entry holds no feature strings of its own."""
    scorer = load()[0]
    assert scorer.features("okafor", "Xx", "none") is scorer.features("kowalski", "Xx", "none")
    assert scorer.features("okafor", "Xx", "none") is not scorer.features("okafor", "XX", "none")


def test_the_word_cache_stays_bounded():
    """A long-running gateway sees words without end: the cache never holds more than its bound,
    and a word read again after the cache emptied gets the same features."""
    scorer = load()[0]
    first = scorer.features("okafor", "Xx", "none")
    for number in range(3 * FEATURE_CACHE):
        scorer.features(f"word{number}", "Xx", "none")
        assert len(scorer._features) <= FEATURE_CACHE
    assert scorer.features("okafor", "Xx", "none") == first
