"""The PERSON model's per-word caches stay bounded however many new words a gateway reads, and
what it finds does not depend on what they hold."""

from __future__ import annotations

from signalvault.guardrails.pii_person import WORD_CACHE, PersonDetector

TEXT = "Thanks Priya, I forwarded it to Dr. Okonkwo and to Marek Nowakowski in Leeds."


def test_per_word_caches_stay_bounded_and_findings_do_not_depend_on_them():
    detector = PersonDetector()
    first = detector.scan(TEXT)
    assert first  # the text holds names the detector finds
    features, model = detector.model.features, detector.model
    caches = {
        "words": features._words,
        "gazetteers": features._gazetteers,
        "neighbours": features._neighbours,
        "own scores": model._own,
    }
    # New capitalised words, two to a sentence, as chat and tickets bring them without end.
    for number in range(WORD_CACHE + WORD_CACHE // 2):
        word = "Zq" + "".join(chr(97 + int(d)) for d in str(number))
        detector.scan(f"Ask {word} Bravo about it.")
        if number % 512 == 0:
            assert all(len(cache) <= WORD_CACHE for cache in caches.values()), caches.keys()
    assert all(len(cache) <= WORD_CACHE for cache in caches.values())
    assert all(caches.values())  # each one is in use: the bound is what kept it small
    assert detector.scan(TEXT) == first
