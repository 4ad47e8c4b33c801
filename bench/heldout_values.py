"""Values for bench/heldout.py: identifiers (Faker locale providers, else random digits that the
python-stdnum validator accepts, in the formats people write) and harmless look-alikes.
"""

from __future__ import annotations

import datetime
import random
import string
from collections.abc import Callable

from faker import Faker
from stdnum import luhn
from stdnum.au import abn, acn, tfn
from stdnum.de import idnr
from stdnum.dk import cpr
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.iso7064 import mod_11_2
from stdnum.za import idnr as za_idnr

_FAKERS: dict[str, Faker] = {}


def _faker(locale: str, rng: random.Random) -> Faker:
    fake = _FAKERS.get(locale)
    if fake is None:
        fake = _FAKERS[locale] = Faker(locale)
    fake.seed_instance(rng.randrange(1 << 30))
    return fake


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _until(rng: random.Random, make: Callable[[], str], ok: Callable[[str], bool]) -> str:
    while True:
        value = make()
        if ok(value):
            return value


def _group(value: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(value[at : at + size])
        at += size
    return sep.join(parts)


def _spaced(rng: random.Random, value: str, sizes: tuple[int, ...], seps: str = " -") -> str:
    """The value compact or grouped the way its country writes it."""
    return value if rng.random() < 0.35 else _group(value, sizes, rng.choice(seps))


def _date6(rng: random.Random) -> str:
    return f"{rng.randrange(40, 100):02d}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"


def _medicare(rng: random.Random) -> str:
    body = str(rng.randrange(2, 7)) + _digits(rng, 7)
    check = sum(int(d) * w for d, w in zip(body, (1, 3, 7, 9, 1, 3, 7, 9), strict=True)) % 10
    return _spaced(rng, body + str(check) + str(rng.randrange(1, 10)), (4, 5, 1), " ")


def _nric(rng: random.Random) -> str:
    first = rng.choice("STFG")
    body = _digits(rng, 7)
    total = sum(int(d) * w for d, w in zip(body, (2, 7, 6, 5, 4, 3, 2), strict=True))
    total += 4 if first in "TG" else 0
    letters = "JZIHGFEDCBA" if first in "ST" else "XWUTRQPNMLK"
    return first + body + letters[total % 11]


def _nino(rng: random.Random) -> str:
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
        first = "A"
    value = first + second + _digits(rng, 6) + rng.choice("ABCD")
    return value if rng.random() < 0.5 else _group(value, (2, 2, 2, 2, 1), " ")


def _cn_ric(rng: random.Random) -> str:
    body = "110105" + f"19{_date6(rng)}" + _digits(rng, 3)
    return body + mod_11_2.calc_check_digit(body)


def _za(rng: random.Random) -> str:
    return _until(
        rng,
        lambda: _date6(rng) + _digits(rng, 4) + rng.choice("01") + "8" + _digits(rng, 1),
        za_idnr.is_valid,
    )


def _kr_date_ok(value: str) -> bool:
    """A real birth date (Korean RRNs since 2020 carry no check digit, so none is required)."""
    try:
        datetime.date(2000 + int(value[:2]), int(value[2:4]), int(value[4:6]))
    except ValueError:
        return False
    return value[7] in "12345678"


def _luhn_any(rng: random.Random, n: int) -> str:
    body = _digits(rng, n - 1)
    return body + luhn.calc_check_digit(body)


# kind: (labels as people write them, value maker)
ID_VALUES: dict[str, tuple[tuple[str, ...], Callable[[random.Random], str]]] = {
    "US_SSN": (("SSN", "social security number"), lambda r: _faker("en_US", r).ssn()),
    "US_ITIN": (("ITIN", "taxpayer identification number"), lambda r: _faker("en_US", r).itin()),
    "US_PASSPORT": (
        ("passport number", "US passport no."),
        lambda r: r.choice(["", "A", "C"]) + _digits(r, 8 if r.random() < 0.5 else 9),
    ),
    "US_DRIVER_LICENSE": (
        ("driver's license", "driving licence number", "DL#"),
        lambda r: r.choice(
            [
                r.choice("ABDFGJ") + _digits(r, 7),
                _digits(r, 9),
                r.choice("SW") + _digits(r, 3) + "-" + _digits(r, 4) + "-" + _digits(r, 4),
            ]
        ),
    ),
    "US_BANK_ACCOUNT": (
        ("bank account number", "checking account #", "account no."),
        lambda r: _digits(r, r.randrange(8, 15)),
    ),
    "ABA_ROUTING": (("routing number", "ABA"), lambda r: _faker("en_US", r).aba()),
    "UK_NHS": (
        ("NHS number", "NHS no."),
        lambda r: _spaced(r, _until(r, lambda: _digits(r, 10), nhs.is_valid), (3, 3, 4)),
    ),
    "UK_NINO": (("National Insurance number", "NI number", "NINO"), _nino),
    "CA_SIN": (
        ("SIN", "social insurance number"),
        lambda r: (
            _faker("en_CA", r).ssn()
            if r.random() < 0.6
            else _faker("en_CA", r).ssn().replace(" ", "-")
        ),
    ),
    # Faker's en_IN aadhaar_id() and ko_KR ssn() mostly fail the check digit / birth date
    # (found while writing the generator, before any tuning): only valid values are kept.
    "IN_AADHAAR": (
        ("Aadhaar", "Aadhaar number", "UID"),
        lambda r: _spaced(
            r, _until(r, lambda: _faker("en_IN", r).aadhaar_id(), aadhaar.is_valid), (4, 4, 4), " "
        ),
    ),
    "IN_PAN": (
        ("PAN", "PAN card", "permanent account number"),
        lambda r: _until(
            r,
            lambda: (
                "".join(r.choice(string.ascii_uppercase) for _ in range(3))
                + r.choice("PCHFATBLJG")
                + r.choice(string.ascii_uppercase)
                + _digits(r, 4)
                + r.choice(string.ascii_uppercase)
            ),
            pan.is_valid,
        ),
    ),
    "DE_TAX_ID": (
        ("Steuer-ID", "steuerliche Identifikationsnummer", "tax ID"),
        lambda r: _spaced(
            r,
            _until(r, lambda: str(r.randrange(1, 10)) + _digits(r, 10), idnr.is_valid),
            (2, 3, 3, 3),
            " ",
        ),
    ),
    "ES_NIF": (("DNI", "NIF"), lambda r: _faker("es_ES", r).nif()),
    "ES_NIE": (("NIE", "número de identidad de extranjero"), lambda r: _faker("es_ES", r).nie()),
    "IT_FISCAL_CODE": (("codice fiscale", "fiscal code", "CF"), lambda r: _faker("it_IT", r).ssn()),
    "PL_PESEL": (("PESEL", "numer PESEL"), lambda r: _faker("pl_PL", r).pesel()),
    "NL_BSN": (("BSN", "burgerservicenummer"), lambda r: _faker("nl_NL", r).ssn()),
    "BR_CPF": (
        ("CPF",),
        lambda r: (
            _faker("pt_BR", r).cpf()
            if r.random() < 0.7
            else _faker("pt_BR", r).cpf().replace(".", "").replace("-", "")
        ),
    ),
    "BR_CNPJ": (("CNPJ",), lambda r: _faker("pt_BR", r).cnpj()),
    "AU_TFN": (
        ("TFN", "tax file number"),
        lambda r: _spaced(r, _until(r, lambda: _digits(r, 9), tfn.is_valid), (3, 3, 3), " "),
    ),
    "AU_ABN": (
        ("ABN", "Australian Business Number"),
        lambda r: _spaced(r, _until(r, lambda: _digits(r, 11), abn.is_valid), (2, 3, 3, 3), " "),
    ),
    "AU_ACN": (
        ("ACN", "Australian Company Number"),
        lambda r: _spaced(r, _until(r, lambda: _digits(r, 9), acn.is_valid), (3, 3, 3), " "),
    ),
    "AU_MEDICARE": (("Medicare number", "Medicare card"), _medicare),
    "SG_NRIC": (("NRIC", "FIN", "NRIC no."), _nric),
    "ZA_ID": (("SA ID number", "South African ID", "ID number"), _za),
    "KR_RRN": (
        ("RRN", "resident registration number", "주민등록번호"),
        lambda r: _until(r, lambda: _faker("ko_KR", r).ssn(), _kr_date_ok),
    ),
    "SE_PERSONNUMMER": (
        ("personnummer", "personal identity number"),
        lambda r: _faker("sv_SE", r).ssn(),
    ),
    "FI_HETU": (
        ("henkilötunnus", "HETU", "Finnish personal identity code"),
        lambda r: _faker("fi_FI", r).ssn(),
    ),
    "FR_NIR": (
        ("numéro de sécurité sociale", "NIR", "INSEE number"),
        lambda r: _faker("fr_FR", r).ssn(),
    ),
    "DK_CPR": (
        ("CPR", "CPR-nummer"),
        lambda r: _until(
            r,
            lambda: _date6(r)[4:] + _date6(r)[2:4] + _date6(r)[:2] + "-" + _digits(r, 4),
            cpr.is_valid,
        ),
    ),
    "NO_FNR": (("fødselsnummer", "national identity number"), lambda r: _faker("no_NO", r).ssn()),
    "CH_AHV": (("AHV", "AVS number", "AHV-Nummer"), lambda r: _faker("de_CH", r).ssn()),
    "CN_RIC": (("resident ID", "身份证号", "ID card number"), _cn_ric),
    "MX_CURP": (("CURP",), lambda r: _faker("es_MX", r).curp()),
    "IL_ID": (("Teudat Zehut", "Israeli ID", "ID number"), lambda r: _faker("he_IL", r).ssn()),
    "BE_NN": (
        ("rijksregisternummer", "national number", "numéro national"),
        lambda r: _faker("nl_BE", r).ssn(),
    ),
    "TH_PIN": (("Thai ID", "national ID number"), lambda r: _faker("th_TH", r).ssn()),
}


def id_value(kind: str, rng: random.Random) -> tuple[str, str]:
    labels, make = ID_VALUES[kind]
    return make(rng), rng.choice(labels)


def _checksum_order(rng: random.Random) -> str:
    """An order number that passes a Luhn or mod-11 check by chance (1 in 10 do)."""
    return _luhn_any(rng, rng.choice([9, 10, 11, 12, 16]))


# Look-alikes: each maker returns a harmless sentence. Split like the templates.
LOOKALIKES: dict[str, list[Callable[[random.Random], str]]] = {
    "tune": [
        lambda r: f"Meeting moved to room {r.randrange(100, 999)}, floor {r.randrange(1, 30)}.",
        lambda r: f"Invoice {_checksum_order(r)} is overdue by {r.randrange(2, 40)} days.",
        lambda r: f"Order #{_checksum_order(r)} shipped today.",
        lambda r: (
            f"Upgrade to version {r.randrange(1, 20)}.{r.randrange(0, 20)}.{r.randrange(0, 99)}.{r.randrange(0, 999)} before the audit."
        ),
        lambda r: (
            f"The build {r.randrange(2019, 2026)}.{r.randrange(1, 13):02d}.{r.randrange(1, 29):02d} failed at 10:{r.randrange(10, 59)}:0{r.randrange(0, 9)}."
        ),
        lambda r: (
            f"Ticket {r.choice('ABCDEFGH')}{r.choice('ABCDEFGH')}-{r.randrange(1000, 99999)} was reopened."
        ),
        lambda r: (
            f"Total due: ${r.randrange(1, 99)},{r.randrange(100, 999)}.{r.randrange(10, 99)} for {r.randrange(2, 50)} seats."
        ),
        lambda r: f"SKU {_digits(r, 13)} is out of stock in warehouse {r.randrange(1, 9)}.",
        lambda r: (
            f"std::vector<int> v; v.reserve({r.randrange(10, 999)}); // see a[1::2] in the Python port"
        ),
        lambda r: (
            f"MAC {':'.join(f'{r.randrange(256):02x}' for _ in range(6))} joined the network."
        ),
    ],
    "untouched": [
        lambda r: (
            f"Suite {r.randrange(100, 2000)} is booked for the offsite; parking level {r.randrange(1, 6)}."
        ),
        lambda r: f"PO {_checksum_order(r)} needs a second approver.",
        lambda r: f"Tracking number {_checksum_order(r)} shows the parcel in transit.",
        lambda r: f"Reference {_checksum_order(r)}: payment received, thank you.",
        lambda r: (
            f"pip install package=={r.randrange(0, 9)}.{r.randrange(0, 30)}.{r.randrange(0, 9)} fixed it on python 3.{r.randrange(8, 14)}."
        ),
        lambda r: (
            f"The train leaves at {r.randrange(6, 23)}:{r.randrange(10, 59)} from platform {r.randrange(1, 20)}."
        ),
        lambda r: f"Case {r.randrange(10**8, 10**9)} escalated; SLA {r.randrange(4, 72)}h.",
        lambda r: (
            f"Serial number {r.choice('ABCDEFXYZ')}{_digits(r, 9)} under warranty until {r.randrange(2026, 2030)}."
        ),
        lambda r: f"Batch {_digits(r, 11)} contains {r.randrange(100, 9999)} units.",
        lambda r: (
            f"commit {''.join(r.choice('0123456789abcdef') for _ in range(40))} reverts the change."
        ),
        lambda r: (
            f"UUID {''.join(r.choice('0123456789abcdef') for _ in range(8))}-{''.join(r.choice('0123456789abcdef') for _ in range(4))}-4{''.join(r.choice('0123456789abcdef') for _ in range(3))}-a{''.join(r.choice('0123456789abcdef') for _ in range(3))}-{''.join(r.choice('0123456789abcdef') for _ in range(12))} not found."
        ),
        lambda r: (
            f"Employee badge {r.randrange(1000, 99999)} opened door {r.randrange(1, 80)} at 07:{r.randrange(10, 59)}."
        ),
    ],
}
