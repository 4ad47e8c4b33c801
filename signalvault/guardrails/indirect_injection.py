"""The `indirect_injection` detector: instructions addressed to the model inside data (a tool
result, a retrieved document, an e-mail), where nothing should be addressed to it at all.

Data talks about things; an injection talks to whoever reads it: it steers "your response",
names the reader as an AI, or sets a task in a line of its own. Rules are data, scored per kind
by noisy-or like the `prompt_injection` detector, whose direct-jailbreak rules also run here.
Tuned on the tune half of bench/indirect_injection.py only. Uses scanner and injection only.
"""

from __future__ import annotations

import string

from signalvault.guardrails.finding import Finding
from signalvault.guardrails.injection import InjectionDetector
from signalvault.guardrails.scanner import Pattern, PatternSet
from signalvault.guardrails.skeleton import skeleton

STEERING = "OUTPUT_STEERING"  # changes what the reader's answer says or how it looks
ADDRESSED = "ADDRESSED_TO_MODEL"  # speaks to the reader as an AI / assistant / model
TASK = "PLANTED_TASK"  # a task or question for an assistant, set apart from the data
DETECTOR = "indirect_injection"

_ANSWER = r"(?:response|reply|answer|output|message|summary|completion)s?"
# Verbs that act on an answer ("add ... to your reply", "encode your response").
_SHAPE = (
    r"(?:add|include|insert|integrate|incorporate|append|prepend|mention|modify|change|alter"
    r"|enhance|augment|embed|translate|render|rewrite|reword|write|replace|substitute|provide"
    r"|format|convert|scramble|jumble|misspell|group|combine|remove|start|begin|end|finish"
    r"|conclude|sign|use|respond|reply|answer|promote|advertise|highlight|stress|emphasi[sz]e"
    r"|tease|hint|link|direct|offer|redirect|introduce|rearrange|anagram|put|place|make|keep"
    r"|structure|present|return|output|print|say|tell|state|claim)"
)
_RULES: tuple[tuple[str, float, str], ...] = (
    # "Add X to your reply", "Modify your answer to ...": one sentence (a dot inside a URL or
    # a "!" closing a quotation does not end it).
    (
        STEERING,
        0.8,
        rf"\b{_SHAPE}\b(?:[^.!?\n]|[.!?](?=[\w\"'])){{0,100}}?\byour\s+{_ANSWER}\b",
    ),
    # Only opening a sentence: "thanks for your reply", "as you said in your answer" are mail.
    (STEERING, 0.8, rf"(?:^|[\n.!?]\s*)(?:in|within|throughout)\s+your\s+{_ANSWER}\b"),
    (STEERING, 0.8, rf"\byour\s+{_ANSWER}(?:'s)?\s+(?:words|letters|characters|order)\b"),
    (STEERING, 0.6, rf"\byour\s+{_ANSWER}\s+(?:must|should|has\s+to|needs\s+to|shall)\b"),
    # Speaking to the reader as a model.
    (
        ADDRESSED,
        0.85,
        r"(?:^|[\n.!?:,;]\s*|\b(?:hey|hi|hello|dear|attention|note\s+to)\s+)(?:the\s+)?(?:ai|a\.i\."
        r"|assistant|ai\s+assistant|chatbot|bot|language\s+model|llm|gpt|chatgpt|claude|copilot"
        r"|gemini|model|agent)\b\s*[,:!-]",
    ),
    (
        ADDRESSED,
        0.8,
        r"\b(?:if\s+you\s+are|as\s+an?|you\s+are\s+an?|attention)\s+(?:an?\s+)?(?:ai|large\s+"
        r"language\s+model|language\s+model|llm|assistant|ai\s+assistant|chatbot|email\s+"
        r"assistant|agent)\b",
    ),
    (
        ADDRESSED,
        0.75,
        r"\b(?:when|while|after|before)\s+(?:summari[sz]ing|processing|reading|answering|"
        r"analy[sz]ing|replying\s+to)\s+(?:this|these|the)\s+(?:e-?mails?|messages?|documents?"
        r"|text|page|data|results?|content)\b",
    ),
    (
        ADDRESSED,
        0.7,
        r"\b(?:send|forward|e-?mail|post|upload|transfer|leak)\s+(?:an?\s+|the\s+|this\s+|all\s+)?"
        r"(?:e-?mail|message|data|file|summary|contents?|conversation|password|credentials?|"
        r"api\s+keys?|details)\b[^.!?\n]{0,60}\bto\s+\S+@\S+",
    ),
    # A task for an assistant standing as a line or sentence of its own.
    (
        TASK,
        0.6,
        r"(?:^|\n)\s*(?:please\s+)?(?:explain|describe|translate|draft|compose|develop|provide"
        r"|generate|create|outline|compare|elaborate|calculate|solve|break\s+down|show\s+me"
        r"|tell\s+me|give\s+me|teach\s+me|find\s+me|convert|render|rewrite|paraphrase"
        r"|imagine|pretend|act\s+as|replace|substitute|write\s+(?:a|an|me|some|the\s+code))\b"
        r"[^\n]{8,}",
    ),
    (
        TASK,
        0.6,
        r"(?:^|\n)\s*(?:how\s+(?:do|can|should|would)\s+(?:i|you|we)|what\s+(?:is|are|was|were)"
        r"\s+the\s+(?:difference|main|primary|best|top|major|benefits|capital|meaning)|what\s+is\s+'"
        r"|what's\s+'|who\s+(?:wrote|invented|discovered|won)|can\s+you\s+(?:show|tell|give|explain"
        r"|write|provide|translate)|how\s+(?:does|do)\s+\w+(?:\s+\w+){0,3}\s+work)\b[^\n]*",
    ),
)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class IndirectInjectionDetector:
    """Reports instructions aimed at the model inside data, by kind, at `threshold` and up; the
    direct `prompt_injection` rules run too (a planted "ignore previous instructions")."""

    def __init__(self, threshold: float = 0.5) -> None:
        self._threshold = threshold
        self._direct = InjectionDetector(threshold)
        self._rules = PatternSet([Pattern(str(i), rule[2]) for i, rule in enumerate(_RULES)])

    def __call__(self, text: str) -> list[Finding]:
        found = self._direct(text)
        lowered = text.lower()
        if len(lowered) != len(text):
            lowered = text.translate(_ASCII_LOWER)  # keep offsets when "İ" would grow
        matches = list(self._rules.finditer(lowered))
        read = skeleton(text)
        if read is not None:  # look-alike letters, read as ASCII too (same offsets)
            known = {(p.key, m.span()) for p, m in matches}
            matches += [
                (p, m) for p, m in self._rules.finditer(read) if (p.key, m.span()) not in known
            ]
            lowered = read  # the anchors are trimmed below by reading the same characters
        best: dict[str, tuple[float, int, int]] = {}
        misses: dict[str, float] = {}
        seen: set[str] = set()
        for pattern, match in matches:
            kind, weight, _ = _RULES[int(pattern.key)]
            if pattern.key not in seen:  # one weight per rule: repeating a phrase adds nothing
                seen.add(pattern.key)
                misses[kind] = misses.get(kind, 1.0) * (1.0 - weight)
            start, end = match.span()
            while start < end and lowered[start] in " \t\r\n.!?:,;":  # the anchor, not the text
                start += 1
            if kind not in best or weight > best[kind][0]:
                best[kind] = (weight, start, end)
        for kind, (_, start, end) in best.items():
            score = round(1.0 - misses[kind], 4)
            if score >= self._threshold and all(end <= f.start or f.end <= start for f in found):
                found.append(Finding(kind, start, end, score, DETECTOR))
        return sorted(found, key=lambda f: f.start)
