"""Table tests for the pii detector: valid values and their look-alikes, per kind."""

from __future__ import annotations

import itertools

import pytest

from signalvault.guardrails.finding import Finding
from signalvault.guardrails.pii import PII_TYPES, PiiDetector
from signalvault.guardrails.pii_checks import iban_ok, luhn_ok, sg_nric_ok, ssn_ok


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector()


def kinds_of(findings: list[Finding], text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in findings]


POSITIVES = [
    # (text, kind, value)
    ("Write to jane.doe+billing@example.co.uk today", "EMAIL", "jane.doe+billing@example.co.uk"),
    ("@team please write to jane@example.org", "EMAIL", "jane@example.org"),  # "@" opens the text
    ("Reach me on +44 20 7946 0958 after six", "PHONE", "+44 20 7946 0958"),
    ("Call (415) 555-2671 ext. 12", "PHONE", "(415) 555-2671 ext. 12"),
    ("office: 030 901820 33", "PHONE", "030 901820 33"),
    ("Phone: 0612345678", "PHONE", "0612345678"),
    ("Card 4111 1111 1111 1111 exp 09/27", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("amex 3782-822463-10005 on file", "CREDIT_CARD", "3782-822463-10005"),
    ("pay with 5555555555554444", "CREDIT_CARD", "5555555555554444"),
    ("My SSN is 536-22-8726.", "US_SSN", "536-22-8726"),
    ("social security number 536228726", "US_SSN", "536228726"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN", "DE89 3704 0044 0532 0130 00"),
    ("iban gb82west12345698765432", "IBAN", "gb82west12345698765432"),
    ("blocked from 203.0.113.77 again", "IP_ADDRESS", "203.0.113.77"),
    ("host 2001:db8:85a3::8a2e:370:7334 is down", "IP_ADDRESS", "2001:db8:85a3::8a2e:370:7334"),
    ("Hello, my name is Maria Gonzalez.", "PERSON", "Maria Gonzalez"),
    ("Please forward this to Dr. Aiko Tanaka", "PERSON", "Dr. Aiko Tanaka"),
    ("\u201cThat is wrong,\u201d says Skjæveland.", "PERSON", "Skjæveland"),
    (
        "I live at 221B Baker Street, London NW1 6XE.",
        "ADDRESS",
        "221B Baker Street, London NW1 6XE",
    ),
    ("Ship it to 94 Koskikatu 83 Apt. 343", "ADDRESS", "94 Koskikatu 83 Apt. 343"),
    ("PSC 1234, Box 5678\nAPO AE 09123", "ADDRESS", "PSC 1234, Box 5678\nAPO AE 09123"),
    ("my zip code is 86786", "ADDRESS", "86786"),
    ("She was born on 14 March 1986 in Leeds", "DATE_OF_BIRTH", "14 March 1986"),
    ("DOB: 04/23/1979", "DATE_OF_BIRTH", "04/23/1979"),
    ("passport number is 912803456", "US_PASSPORT", "912803456"),
    ("My driver's license number is LH329609T", "US_DRIVER_LICENSE", "LH329609T"),
    ("bank account number: 000123456789", "US_BANK_ACCOUNT", "000123456789"),
    ("NHS number 943 476 5919", "UK_NHS", "943 476 5919"),
    ("NI number AB 12 34 56 C", "UK_NINO", "AB 12 34 56 C"),
    ("my SIN is 130 692 544", "CA_SIN", "130 692 544"),
    ("Aadhaar 2345 6789 0124", "IN_AADHAAR", "2345 6789 0124"),
    ("PAN: ABCPE1234F", "IN_PAN", "ABCPE1234F"),
    ("DNI 12345678Z", "ES_NIF", "12345678Z"),
    ("NIE X1234567L", "ES_NIE", "X1234567L"),
    ("codice fiscale RSSMRA85T10A562S", "IT_FISCAL_CODE", "RSSMRA85T10A562S"),
    ("Steuer-ID 86095742719", "DE_TAX_ID", "86095742719"),
    ("TFN 123 456 782", "AU_TFN", "123 456 782"),
    ("Medicare card 2123 45670 1", "AU_MEDICARE", "2123 45670 1"),
    ("NRIC S1234567D", "SG_NRIC", "S1234567D"),
    ("주민등록번호 900101-1234568", "KR_RRN", "900101-1234568"),
    # National identifiers validated by python-stdnum: label, or a grouping few numbers share.
    ("ITIN 912-71-1234 on the W-7", "US_ITIN", "912-71-1234"),
    ("routing number 021000021 for the wire", "ABA_ROUTING", "021000021"),
    ("PESEL 44051401359", "PL_PESEL", "44051401359"),
    ("mijn BSN is 111222333", "NL_BSN", "111222333"),
    ("her CPF 390.533.447-05 is on file", "BR_CPF", "390.533.447-05"),
    ("fornecedor 11.222.333/0001-81, pagamento", "BR_CNPJ", "11.222.333/0001-81"),
    ("ABN 51 824 753 556", "AU_ABN", "51 824 753 556"),
    ("ACN 004 085 616", "AU_ACN", "004 085 616"),
    ("SA ID 8001015009087", "ZA_ID", "8001015009087"),
    ("personnummer 811228-9874", "SE_PERSONNUMMER", "811228-9874"),
    ("henkilötunnus 131052-308T", "FI_HETU", "131052-308T"),
    ("CPR-nummer 211062-5629", "DK_CPR", "211062-5629"),
    ("fødselsnummer 15108695088", "NO_FNR", "15108695088"),
    ("numéro de sécurité sociale 2 95 10 99 126 111 93", "FR_NIR", "2 95 10 99 126 111 93"),
    ("AHV-Nr. 756.9217.0769.85", "CH_AHV", "756.9217.0769.85"),
    ("身份证号 11010519491231002X", "CN_RIC", "11010519491231002X"),
    ("CURP: BOXW310820HNERXN09", "MX_CURP", "BOXW310820HNERXN09"),
    ("Teudat Zehut 039337423", "IL_ID", "039337423"),
    ("rijksregisternummer 85.07.30-033.28", "BE_NN", "85.07.30-033.28"),
    ("Thai ID 1-8675-65088-99-5", "TH_PIN", "1-8675-65088-99-5"),
]


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVES)
def test_detects_valid_value(detector: PiiDetector, text: str, kind: str, value: str) -> None:
    assert (kind, value) in kinds_of(detector(text), text)


NEGATIVES = [
    # (text, kind that must not be reported)
    ("Card 4111 1111 1111 1112 was declined", "CREDIT_CARD"),  # Luhn fails
    ("request id 550e8400-e29b-41d4-a716-446655440000", "PHONE"),  # UUID
    ("request id 550e8400-e29b-41d4-a716-446655440000", "CREDIT_CARD"),
    ("fixed in commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39", "PHONE"),  # git SHA
    ("upgrade to version 1.2.3.4 now", "IP_ADDRESS"),  # version number
    ("released in 2.14.0, see 10.2.1", "IP_ADDRESS"),
    ("the job ran at 2024-03-05 12:30:45 UTC", "PHONE"),  # timestamp
    ("logged 2024-03-05T12:30:45.123Z", "PHONE"),
    ("order number 4111111111111111 shipped", "CREDIT_CARD"),  # no card context, order label
    ("SSN 666-12-3456 is not issued", "US_SSN"),  # area 666
    ("SSN 900-12-3456", "US_SSN"),  # area 9xx
    ("SSN 123-00-4567", "US_SSN"),  # group 00
    ("SSN 123-45-0000", "US_SSN"),  # serial 0000
    ("IBAN DE89 3704 0044 0532 0130 01", "IBAN"),  # mod-97 fails
    ("address 999.12.1.1 unreachable", "IP_ADDRESS"),  # octet out of range
    ("The meeting is at 10 and lasts 45 minutes", "PHONE"),
    ("Aadhaar 2345 6789 0123", "IN_AADHAAR"),  # Verhoeff fails
    ("NHS number 943 476 5918", "UK_NHS"),  # mod 11 fails
    ("DNI 12345678A", "ES_NIF"),  # wrong letter
    ("Capitalized words like Wisdom and Discipline are not names.", "PERSON"),
    ("In 2019 Apple released 3 phones", "ADDRESS"),
    ("I have 3 cats and 2 dogs", "ADDRESS"),
    ("Will my account stay active?", "PERSON"),
    ("the invoice date is 04/23/1979", "DATE_OF_BIRTH"),  # a date, but no birth context
    ("Ich habe eine Frage zu dem Vertrag und bitte um Antwort", "PERSON"),  # German nouns
    ("We shipped to Germany and Switzerland last week", "PERSON"),  # places
    ("zipcodeapi token = abc", "ADDRESS"),
    ("Released on 08 March 2021 with fixes", "ADDRESS"),
    ("request id CANARY-3f2eda91c0b24e7d8a1b2c3d4e5f6a7b", "PERSON"),  # letters in a hex id
    ("trace f04bc95d26584ec7baba138950a72893 done", "PERSON"),
    ("set maria_enabled = true", "PERSON"),  # part of an identifier
    # A check digit alone is weak evidence: numbers that pass one by chance stay untouched.
    ("Invoice 390.533.447-05 is overdue", "BR_CPF"),
    ("Order #111222333 shipped today", "NL_BSN"),
    ("Meeting moved to room 714, floor 5.", "ADDRESS"),  # a unit alone is no address
    ("bind to 0.0.0.0 and 127.0.0.1:8080", "IP_ADDRESS"),  # unspecified and loopback
    ("x[1::2] and std::vector", "IP_ADDRESS"),  # code, not IPv6
    ("MAC 00:1a:2b:3c:4d:5e at 10:05:07", "IP_ADDRESS"),
    ("route 10.0.0.0/8 via the gateway", "IP_ADDRESS"),  # a network, not a host
]


@pytest.mark.parametrize(("text", "kind"), NEGATIVES)
def test_ignores_look_alike(detector: PiiDetector, text: str, kind: str) -> None:
    assert kind not in [f.kind for f in detector(text)]


PERSON_SPANS = [
    # (text, every PERSON span found): openers stay out of the span, look-alikes stay out.
    ("Ask Maria about it", ["Maria"]),
    ("Contact Sarah tomorrow", ["Sarah"]),
    ("Email John Smith today", ["John Smith"]),
    ("Hello Maria, how are you?", ["Maria"]),
    ("Tell Dr. Aiko Tanaka the news", ["Dr. Aiko Tanaka"]),  # the title stays in the span
    ("Dear Mr. Tanaka,", ["Mr. Tanaka"]),
    ("Max Verstappen won again", ["Max Verstappen"]),  # a census first name, not a verb
    ('"Go," said Hope.', ["Hope"]),  # names the speaker of a quotation
    ("My name is Kenjirou", ["Kenjirou"]),  # in no name list, but a strong cue
    ("You said: Stream, please.", []),  # an everyday word quoted, not a speaker
    ("You said Stream", []),
    ("Hi from Anthropic's SDK", []),  # companies and software in no name list
    ("Deploy with Kubernetes and Docker", []),
    ("We migrated to Terraform last week", []),
    ("We use Snowflake and Databricks", []),
    ("Ask Salesforce about pricing", []),
    ("Call Stripe support", []),
    ("Message Slack admins about it", []),
    ("Remind Kubernetes to restart", []),
]


@pytest.mark.parametrize(("text", "spans"), PERSON_SPANS)
def test_person_spans(detector: PiiDetector, text: str, spans: list[str]) -> None:
    found = kinds_of(detector(text), text)
    assert [value for kind, value in found if kind == "PERSON"] == spans


def test_lone_unknown_word_needs_a_strong_cue() -> None:
    """A word in no name list scores below the default threshold after a weak cue."""
    detect = PiiDetector(types=["PERSON"], threshold=0.0)

    def score(text: str) -> float:
        return next(f.score for f in detect(text) if text[f.start : f.end] == "Kubernetes")

    assert score("Deploy with Kubernetes") < 0.5 <= score("My name is Kubernetes")


CHECKS = [
    (luhn_ok, "79927398713", True),
    (luhn_ok, "79927398710", False),
    (ssn_ok, "536228726", True),
    (ssn_ok, "078051120", False),  # the Woolworth wallet card number
    (iban_ok, "GB82WEST12345698765432", True),
    (iban_ok, "GB82WEST1234569876543", False),  # wrong length for GB
    (sg_nric_ok, "S1234567D", True),
    (sg_nric_ok, "S1234567A", False),
]


@pytest.mark.parametrize(("check", "value", "expected"), CHECKS)
def test_check_digit_rules(check, value: str, expected: bool) -> None:
    assert check(value) is expected


def test_offsets_are_str_indices_after_multibyte_text(detector: PiiDetector) -> None:
    text = "Grüße 👋🏽 — 東京から: mail ünïcødé@example.com or call +49 30 901820 33"
    found = {f.kind: text[f.start : f.end] for f in detector(text)}
    assert found["EMAIL"] == "ünïcødé@example.com"
    assert found["PHONE"] == "+49 30 901820 33"


def test_findings_are_sorted_and_never_overlap(detector: PiiDetector) -> None:
    text = (
        "Maria Gonzalez, card 4111 1111 1111 1111, ssn 536-22-8726, "
        "lives at 12 Main Street, Springfield, IL 62704; mail maria@example.com"
    )
    findings = detector(text)
    assert [f.start for f in findings] == sorted(f.start for f in findings)
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))
    assert all(f.detector == "pii" and 0.0 <= f.score <= 1.0 for f in findings)
    assert {f.kind for f in findings} >= {"PERSON", "CREDIT_CARD", "US_SSN", "ADDRESS", "EMAIL"}


def test_threshold_drops_low_confidence_findings() -> None:
    text = "The code is 536-22-8726 on the sheet"  # an SSN shape without its label
    assert "US_SSN" in [f.kind for f in PiiDetector(threshold=0.5)(text)]
    assert PiiDetector(threshold=0.9)(text) == []


def test_context_word_raises_confidence() -> None:
    detect = PiiDetector(types=["US_SSN"], threshold=0.0)
    plain = detect("number 536-22-8726")[0].score
    labelled = detect("SSN 536-22-8726")[0].score
    assert labelled > plain


def test_allow_list_values_are_never_reported() -> None:
    text = "Contact support@example.com or jane@example.org"
    found = PiiDetector(allow=["support@example.com"])(text)
    assert kinds_of(found, text) == [("EMAIL", "jane@example.org")]


def test_types_filter_reports_only_requested_kinds() -> None:
    text = "Maria Gonzalez, maria@example.com, +44 20 7946 0958"
    found = PiiDetector(types=["EMAIL", "PHONE"])(text)
    assert {f.kind for f in found} == {"EMAIL", "PHONE"}


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="NOT_A_TYPE"):
        PiiDetector(types=["EMAIL", "NOT_A_TYPE"])


IP_FORMS = [
    "2001:db8::8a2e:370:7334",
    "2001:0db8:0000:0000:0000:ff00:0042:8329",
    "::ffff:192.0.2.128",
    "64:ff9b::198.51.100.7",
    "0000:0000:0000:0000:0000:ffff:203.0.113.9",
    "fe80::1ff:fe23:4567:890a%eth0",
    "FE80::A%25en0",
    "2001:db8::",
]


@pytest.mark.parametrize("address", IP_FORMS)
def test_every_ipv6_spelling_is_redacted_whole(detector: PiiDetector, address: str) -> None:
    text = f"traffic from {address}. Block it"
    assert kinds_of(detector(text), text) == [("IP_ADDRESS", address)]


@pytest.mark.parametrize("text", ["ssh 10.0.0.7:8080 now", "host 10.0.0.7/24 is up"])
def test_ipv4_with_port_or_netmask_is_found(detector: PiiDetector, text: str) -> None:
    assert ("IP_ADDRESS", "10.0.0.7") in kinds_of(detector(text), text)


def test_unlabelled_bare_number_passing_a_check_is_not_reported(detector: PiiDetector) -> None:
    """111222333 passes the Dutch BSN 11-test; without a label it is just a number."""
    assert detector("The total was 111222333 units") == []


def test_every_kind_is_documented_in_pii_types() -> None:
    assert {kind for _, kind, _ in POSITIVES} == PII_TYPES


def test_empty_and_plain_text_give_nothing(detector: PiiDetector) -> None:
    assert detector("") == []
    assert detector("the quick brown fox jumps over the lazy dog") == []
