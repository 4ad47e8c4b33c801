"""Synthetic business-style sentences for training the PERSON model (training/train_person.py).

The shared training corpora are tweets; prompts sent to a gateway are mostly e-mails, meeting
notes and chat. These templates (written for SignalVault, disjoint from bench/heldout.py's) put
Faker names, and capitalised words that are not names (companies, cities, products, months,
job titles), into such text, so the model learns both. Faker's data is MIT-licensed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from faker import Faker

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL",
           "en_IN", "sv_SE", "da_DK", "cs_CZ", "tr_TR", "en_NZ", "hu_HU", "ro_RO"]  # fmt: skip
# {n}, {m}, {o}: people; {c}: a company; {t}: a city; {p}: a product; {j}: a job title.
TEMPLATES = [
    "Can you summarise the email {n} sent about the {p} launch?",
    "Reply to {n} and say the invoice from {c} was paid on Monday.",
    "{n} from {c} wants a quote for 40 licences.",
    "Add {n} and {m} to the {p} steering group.",
    "Minutes: {n} opened the meeting, {m} presented the budget, {o} took notes.",
    "Dear {n},\nthank you for your order. Kind regards,\n{m}",
    "From: {n}\nTo: {m}\nSubject: {p} renewal",
    "I spoke with {n} yesterday; she thinks {c} will sign in {t}.",
    "Please ask {n} whether the {t} office is open on Friday.",
    "Our {j}, {n}, approved the change.",
    "{n} ({j}) will lead the migration to {p}.",
    "cc {n}, {m}",
    "Thanks {n}! I'll loop in {m} from legal.",
    "Hey {n}, can you review my PR before {m} merges it?",
    "The customer, {n}, called about a refund for order 1182.",
    "Write a LinkedIn post congratulating {n} on joining {c} as {j}.",
    "{n}: the build is green again\n{m}: great, deploying to {t} now",
    "Who is {n}? They signed the {c} contract.",
    "Draft a thank-you note to {n} and {m} for the {t} workshop.",
    "Escalate to {n} if {c} does not answer by Thursday.",
    "My name is {n} and I manage the {p} account at {c}.",
    "Please call me {n}, not {m}.",
    "{n} and {m} disagree about the {p} roadmap; summarise both views.",
    "According to {n}, the {t} warehouse ships 300 orders a day.",
    "Book a flight for {n} from {t} to London on the 14th.",
    "Translate {n}'s message to Spanish: 'The meeting is moved.'",
    "Performance review for {n}: strong on delivery, needs work on planning.",
    "{n} left {c} in March; who owns the {p} account now?",
    "{c} opened an office in {t} and hired {n} as {j}.",
    "The {p} dashboard shows revenue for {t} and Berlin.",
    "Compare {c} and the {p} suite for a team of twenty.",
    "Schedule the {p} demo in {t} for April, with the {j} present.",
    "Which {j} at {c} signs purchase orders above 10k?",
    "Summarise the {c} annual report for the board.",
    "We moved the {t} team to the {p} platform last quarter.",
]
_PRODUCTS = ["Salesforce", "Jira", "Kubernetes", "Snowflake", "Workday", "Zendesk", "Figma",
             "SharePoint", "Tableau", "Confluence", "Atlas", "Phoenix", "Orion", "Falcon",
             "Horizon", "Nimbus", "Vertex", "Quantum", "Apollo", "Helios"]  # fmt: skip


def records(count: int = 3000, seed: int = 20261206) -> Iterator[dict[str, Any]]:
    """Records in the shared PII format: PERSON spans for {n}, {m}, {o}; nothing else labelled."""
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for n, fake in enumerate(fakers.values()):
        fake.seed_instance(seed + n)
    for i in range(count):
        template = rng.choice(TEMPLATES)
        people: dict[str, str] = {}
        for key in ("n", "m", "o"):
            fake = fakers[rng.choice(LOCALES)]
            roll = rng.random()
            people[key] = (
                fake.first_name() if roll < 0.35
                else fake.last_name() if roll < 0.45
                else f"{fake.first_name()} {fake.last_name()}"
            )  # fmt: skip
        fake = fakers[rng.choice(LOCALES)]
        values = {
            **people,
            "c": fake.company(),
            "t": fake.city(),
            "p": rng.choice(_PRODUCTS),
            "j": fakers["en_US"].job().split(",")[0],
        }
        text = template.format(**values)
        lowered = rng.random() < 0.12
        entities = []
        cursor = 0
        for part in _placeholders(template):
            value = values[part]
            start = text.index(value, cursor)
            cursor = start + len(value)
            if part in people:
                entities.append({"start": start, "end": cursor, "type": "PERSON", "value": value})
        if lowered:
            text = text.lower()
            for e in entities:
                e["value"] = e["value"].lower()
        yield {"id": f"synthetic-{i}", "text": text, "entities": entities, "meta": {}}


def _placeholders(template: str) -> list[str]:
    out = []
    at = template.find("{")
    while at != -1:
        out.append(template[at + 1 : template.index("}", at)])
        at = template.find("{", at + 1)
    return out
