"""The scan cache: a text seen again gets exactly the findings a fresh scan gives, without
running the detector; the cache stays bounded and holds no text."""

from __future__ import annotations

from signalvault.guardrails.engine import Context, Engine, Redactor
from signalvault.guardrails.finding import Finding
from signalvault.guardrails.policy import DEFAULT_RULES, Policy
from signalvault.guardrails.scan_cache import MIN_CHARS, ScanCache
from tests.shared_data import eval_texts


def _texts(limit: int = 300) -> list[str]:
    return eval_texts("pii-presidio-research-synth-v2.jsonl", limit) + eval_texts(
        "secrets-trufflehog-detector-tests.jsonl", limit
    )


def _engine(entries: int) -> Engine:
    return Engine(Policy(1, DEFAULT_RULES), lambda text, model: len(text), cache_entries=entries)


def _judge(engine: Engine, segments: list[str]) -> tuple[object, ...]:
    verdict = engine.scan(segments, "input", Context(model="gpt-4o-mini"), Redactor())
    evaluations = [(e.rule, e.outcome, e.kinds, e.spans) for e in verdict.evaluations]
    return verdict.decision, verdict.texts, evaluations


def test_cached_verdicts_equal_fresh_ones_on_labelled_data() -> None:
    plain, cached = _engine(0), _engine(10_000)
    # Long texts (the cached ones) built from the labelled samples, each judged twice.
    texts = _texts()
    segments = [" ".join(texts[i : i + 4]) for i in range(0, len(texts), 4)]
    assert sum(len(s) >= MIN_CHARS for s in segments) > 50
    for _ in range(2):
        for segment in segments:
            assert _judge(cached, [segment, "short one"]) == _judge(plain, [segment, "short one"])
    assert cached.cache.hits >= sum(len(s) >= MIN_CHARS for s in segments)
    assert len(plain.cache) == 0


def test_a_hit_does_not_run_the_detector() -> None:
    engine = _engine(100)
    calls: list[str] = []
    for name, detector in list(engine._detectors.items()):

        def counted(text: str, _inner=detector) -> list[Finding]:  # type: ignore[no-untyped-def]
            calls.append(text)
            return _inner(text)

        engine._detectors[name] = counted
    text = "Please email maria.lopez@example.com about the invoice for account 4111. " * 3
    first = _judge(engine, [text])
    ran = len(calls)
    assert ran > 0
    assert _judge(engine, [text]) == first
    assert len(calls) == ran
    _judge(engine, [text + " changed"])
    assert len(calls) == 2 * ran


def test_the_cache_is_bounded_least_recently_used_first_and_keeps_no_text() -> None:
    cache = ScanCache(3)
    texts = [f"{n} " + "x" * MIN_CHARS for n in range(5)]
    digests = [cache.digest(t) for t in texts]
    assert all(d is not None and len(d) == 16 for d in digests)
    finding = (Finding("EMAIL", 0, 3, 1.0, "pii"),)
    for digest in digests[:3]:
        assert digest is not None
        cache.put(1, digest, finding)
    assert digests[0] is not None and cache.get(1, digests[0]) == finding  # now most recent
    for digest in digests[3:]:
        assert digest is not None
        cache.put(1, digest, finding)
    assert len(cache) == 3
    assert digests[1] is not None and cache.get(1, digests[1]) is None  # evicted first
    assert cache.get(1, digests[0]) == finding
    assert cache.digest("short") is None and ScanCache(0).digest(texts[0]) is None
    stored = repr(cache._entries)
    assert not any(text[:12] in stored for text in texts)
    # Keyed per process: the same text has another key in another cache.
    assert ScanCache(3).digest(texts[0]) != digests[0]
