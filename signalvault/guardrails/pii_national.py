"""National identifiers written as digits: one table row per identifier (canonical kind, the digit
groupings its country writes, python-stdnum's validator, label words), and the scoring of a
digit run against the rows whose grouping it has. Lettered identifiers live in `pii_ids`.

A check digit on a bare number is weak evidence (one order number in ten passes a mod-10
check), so a value is reported on its own only in a grouping its country uses and few other
numbers do (`123.456.789-09` for a CPF); otherwise a label ("CPF", "NHS number") must be near.
"""

from __future__ import annotations

import datetime
import importlib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from signalvault.guardrails.pii_checks import Candidate, context_near, luhn_ok

Check = Callable[[str], bool]

LABELLED = 0.9
_OTHER_PENALTY = 0.4
# A label after the value sits further away than one before it: "... 214035797 is a valid BSN".
_AFTER = 40


def _words(*words: str) -> re.Pattern[str]:
    # Letters on either side end a word; "id" must not match inside "paid", "sin" in "using".
    return re.compile(r"(?<![^\W\d_])(?:" + "|".join(words) + r")(?![^\W\d_])", re.IGNORECASE)


def stdnum_check(module: str) -> Check:
    """python-stdnum's `is_valid` for `module`, imported on first use (most rules never fire).

    Validators raise on some malformed input instead of answering False; that is a no.
    """
    validate: list[Check] = []

    def check(value: str) -> bool:
        if not validate:
            validate.append(importlib.import_module(f"stdnum.{module}").is_valid)
        try:
            return bool(validate[0](value))
        except Exception:  # any failure to validate means "not this identifier"
            return False

    return check


def _birth_date_ok(yymmdd: str) -> bool:
    return _date_ok(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6]))


def _date_ok(year: int, month: int, day: int) -> bool:
    """Whether the date exists. Most digit runs fail on month or day: tested first, they spare
    the ValueError (raising and catching one costs more than the rest of a run's shaping)."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _prechecked(check: Check, plausible: Check, *, is_exact: bool = False) -> Check:
    """`check` (python-stdnum's) behind `plausible`, a necessary condition of it on ASCII digits
    that costs a tenth as much: a nine-digit run meets seven validators, each ~50K instructions
    of cleaning and validating, and ~90% of numbers fail their checksum or date anyway. Other
    digits (stdnum reads full-width ones as ASCII) and plausible numbers go to stdnum, which
    decides, unless `is_exact`: `plausible` is then everything stdnum's validator checks of
    ASCII digits of the lengths it is given (a checksum, leading digits, not all zeros: read in
    stdnum's source, and tests/guardrails/test_pii_numbers.py holds the two to the same answers),
    and stdnum is asked only about other digits."""

    def prechecked(digits: str) -> bool:
        return (not digits.isascii() or plausible(digits)) and check(digits)

    def exact(digits: str) -> bool:
        return plausible(digits) if digits.isascii() else check(digits)

    return exact if is_exact else prechecked


def _weighted_sum(weights: tuple[int, ...], modulus: int) -> Check:
    """Whether ASCII digits, as many as `weights`, weigh to 0 modulo `modulus` (the form of most
    check digits). Their bytes are the digits + 48: the sum runs in C."""
    offset = 48 * sum(weights)

    def plausible(digits: str) -> bool:
        if len(digits) != len(weights):
            return False
        total: int = sum(map(operator.mul, weights, digits.encode()))
        return (total - offset) % modulus == 0

    return plausible


def _luhn_digits(first_not: str) -> Check:
    """Digits passing Luhn whose first digit is not one of `first_not`."""
    return lambda digits: digits[:1] not in first_not and luhn_ok(digits)


def _date_digits(month_at: int, day_at: int) -> Check:
    """ASCII digits holding a month 01-12 and a day 01-31 at those places."""

    def plausible(digits: str) -> bool:
        month, day = digits[month_at : month_at + 2], digits[day_at : day_at + 2]
        return "01" <= month <= "12" and "01" <= day <= "31"

    return plausible


def _weighted(weights: tuple[int, ...], digits: str) -> int:
    """The sum of ASCII `digits` times `weights` (as many digits as weights are read)."""
    total: int = sum(map(operator.mul, weights, digits.encode()))
    return total - 48 * sum(weights[: len(digits)])


# Necessary conditions of the python-stdnum validators of 10- to 15-digit runs, as above: a bare
# 11-digit run met seven validators (~430K instructions in all), a 10-digit one ~260K.
def _de_idnr(digits: str) -> bool:
    """Steuer-ID: no leading 0, one digit of the first ten written two or three times (8 or 9
    distinct digits), ISO 7064 mod 11,10."""
    if len(digits) != 11 or digits[:1] == "0" or len(set(digits[:10])) not in (8, 9):
        return False
    check = 5
    for byte in digits.encode():
        check = (((check or 10) * 2) % 11 + byte - 48) % 10
    return check == 1


def _mod11_check_digits(weights: tuple[int, ...], digits: str, at: int) -> bool:
    """The digit at `at` is (11 - weighted sum of those before) mod 11 mod 10 (CPF, CNPJ)."""
    return (11 - _weighted(weights, digits[:at])) % 11 % 10 == int(digits[at])


_CPF_1, _CPF_2 = tuple(range(10, 1, -1)), tuple(range(11, 1, -1))
_CNPJ_1, _CNPJ_2 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


def _br_cpf(digits: str) -> bool:
    return (
        len(digits) == 11
        and digits != "0" * 11
        and _mod11_check_digits(_CPF_1, digits, 9)
        and _mod11_check_digits(_CPF_2, digits, 10)
    )


def _br_cnpj(digits: str) -> bool:
    return (
        len(digits) == 14
        and not digits.startswith("0" * 12)
        and _mod11_check_digits(_CNPJ_1, digits, 12)
        and _mod11_check_digits(_CNPJ_2, digits, 13)
    )


def _au_abn(digits: str) -> bool:
    """ABN: the first two digits are 11 + (minus the weighted sum of the rest - 1) mod 89."""
    if len(digits) != 11:
        return False
    return 11 + (-_weighted((3, 5, 7, 9, 11, 13, 15, 17, 19), digits[2:]) - 1) % 89 == int(
        digits[:2]
    )


def _no_fnr(digits: str) -> bool:
    """Fødselsnummer: two mod-11 check digits (10 is no digit: such numbers are not issued)."""
    return (
        len(digits) == 11
        and (11 - _weighted((3, 7, 6, 1, 8, 9, 4, 5, 2), digits[:9])) % 11 == int(digits[9])
        and (11 - _weighted((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), digits[:10])) % 11 == int(digits[10])
    )


def _be_nn(digits: str) -> bool:
    """Belgian national number: 97 - (the first nine digits, or 2 and them) mod 97 is the last
    two."""
    if len(digits) != 11:
        return False
    check = int(digits[9:])
    return 97 - int(digits[:9]) % 97 == check or 97 - int("2" + digits[:9]) % 97 == check


def _fr_nir(digits: str) -> bool:
    """NIR (digits only: Corsica's 2A/2B never reach here): 97 - the first 13 mod 97."""
    return len(digits) == 15 and 97 - int(digits[:13]) % 97 == int(digits[13:])


def _d5_product(i: int, j: int) -> int:
    """i * j in the dihedral group D5, its elements numbered 0-9 as Verhoeff numbers them:
    0-4 the rotations, 5-9 the reflections."""
    if i < 5 and j < 5:
        return (i + j) % 5
    if i < 5:
        return 5 + (i + j - 5) % 5
    if j < 5:
        return 5 + (i - 5 - j) % 5
    return (i - j) % 5


_VERHOEFF_D = tuple(tuple(_d5_product(i, j) for j in range(10)) for i in range(10))
_VERHOEFF_P = [tuple(range(10)), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)]  # P^k, k = position mod 8
for _ in range(6):
    _VERHOEFF_P.append(tuple(_VERHOEFF_P[1][d] for d in _VERHOEFF_P[-1]))


def _in_aadhaar(digits: str) -> bool:
    """Aadhaar: a first digit 2-9, no palindrome, and Verhoeff's check over the digits, last
    first."""
    if len(digits) != 12 or digits[0] in "01" or digits == digits[::-1]:
        return False
    check = 0
    for i, byte in enumerate(reversed(digits.encode())):
        check = _VERHOEFF_D[check][_VERHOEFF_P[i % 8][byte - 48]]
    return check == 0


_TH_WEIGHTS = tuple(2 - i for i in range(12))


def _th_pin(digits: str) -> bool:
    """Thai ID: no leading 0 or 9; (1 - sum of (2 - i) * digit i mod 11) mod 10 is the last."""
    if len(digits) != 13 or digits[0] in "09":
        return False
    total = _weighted(_TH_WEIGHTS, digits[:12]) % 11
    return (1 - total) % 10 == int(digits[12])


_UK_NHS = _prechecked(
    stdnum_check("gb.nhs"), _weighted_sum(tuple(range(10, 0, -1)), 11), is_exact=True
)
_DE_IDNR = _prechecked(stdnum_check("de.idnr"), _de_idnr)
# PESEL: the last digit is (10 - weighted sum of the first ten) mod 10.
_PL_PESEL = _prechecked(stdnum_check("pl.pesel"), _weighted_sum((1, 3, 7, 9) * 2 + (1, 3, 1), 10))
_BR_CPF = _prechecked(stdnum_check("br.cpf"), _br_cpf, is_exact=True)
_BR_CNPJ = _prechecked(stdnum_check("br.cnpj"), _br_cnpj, is_exact=True)
_AU_ABN = _prechecked(stdnum_check("au.abn"), _au_abn, is_exact=True)
_NO_FNR = _prechecked(stdnum_check("no.fodselsnummer"), _no_fnr)
_BE_NN = _prechecked(stdnum_check("be.nn"), _be_nn)
_FR_NIR = _prechecked(stdnum_check("fr.nir"), _fr_nir, is_exact=True)
_CH_AHV = _prechecked(stdnum_check("ch.ssn"), lambda d: d[:3] == "756")  # then EAN-13
_TH_PIN = _prechecked(stdnum_check("th.pin"), _th_pin, is_exact=True)
_IN_AADHAAR = _prechecked(stdnum_check("in_.aadhaar"), _in_aadhaar, is_exact=True)


def _kr_rrn(digits: str) -> bool:
    """Korean RRN: a birth date and a sex/century digit; numbers issued since October 2020 carry
    no check digit, so the check digit only raises the score (see `NationalId.strict`)."""
    return len(digits) == 13 and digits[6] in "12345678" and _birth_date_ok(digits[:6])


def _cn_ric(digits: str) -> bool:
    """Chinese resident ID: birth date in positions 7-14 and ISO 7064 mod 11-2 (X for 10).

    stdnum's own validator also looks the birth place up in a 3 MB table; the check character
    and date are evidence enough, and the table would cost every gateway its memory.
    """
    if len(digits) != 18 or not digits[:17].isdigit():
        return False
    if not _date_ok(int(digits[6:10]), int(digits[10:12]), int(digits[12:14])):
        return False
    weights = [pow(2, 17 - i, 11) for i in range(17)]
    total = sum(int(d) * w for d, w in zip(digits[:17], weights, strict=True))
    return "10X98765432"[total % 11] == digits[17].upper()


@dataclass(frozen=True, slots=True)
class NationalId:
    """One identifier written with digits only (a trailing X aside).

    `shapes`: digit-group lengths people write it in; `distinctive`: (shape, separators) pairs
    unusual enough to report without a label, at `grouped_score`; `bare_score`: a valid value
    in any other accepted shape with no label (below 0.5 is "not reported by default").
    `strict`: an optional stronger check (a check digit some numbers lack) worth +0.1.
    """

    kind: str
    shapes: tuple[tuple[int, ...], ...]
    check: Check
    words: re.Pattern[str]
    distinctive: tuple[tuple[tuple[int, ...], str], ...] = ()
    grouped_score: float = 0.7
    bare_score: float = 0.3
    strict: Check | None = None


# "ID number", "national identity number": generic labels that name no country.
_GENERIC = (
    r"national (?:id|identity|identification)(?: (?:number|no\.?|card))?",
    r"(?:personal|citizen|identity|identification) (?:id|number|no\.?|code)",
    r"id (?:number|no\.?|card)",
    r"id#",
)


# The validators nine-digit runs meet (seven of them), each behind its cheap necessary test.
_US_ITIN = _prechecked(stdnum_check("us.itin"), lambda d: d[:1] == "9")  # area 9xx
# ABA: the check digit is the first eight digits weighed 7, 3, 9 (repeating), mod 10; weighing
# it 9 (-1 mod 10) too makes the weighted sum of all nine 0.
_ABA_ROUTING = _prechecked(stdnum_check("us.rtn"), _weighted_sum((7, 3, 9) * 3, 10), is_exact=True)
_CA_SIN = _prechecked(stdnum_check("ca.sin"), _luhn_digits("08"), is_exact=True)
_BSN_SUM = _weighted_sum((9, 8, 7, 6, 5, 4, 3, 2, -1), 11)
_NL_BSN = _prechecked(stdnum_check("nl.bsn"), lambda d: d != "0" * 9 and _BSN_SUM(d), is_exact=True)
_TFN_WEIGHTS = (1, 4, 3, 7, 5, 8, 6, 9, 10)  # eight-digit TFNs take the first eight
_TFN_9, _TFN_8 = _weighted_sum(_TFN_WEIGHTS, 11), _weighted_sum(_TFN_WEIGHTS[:8], 11)
_AU_TFN = _prechecked(
    stdnum_check("au.tfn"), lambda d: (_TFN_9 if len(d) == 9 else _TFN_8)(d), is_exact=True
)
# ACN: the check digit is (sum of digit * (position - 8)) mod 10 over the first eight.
_AU_ACN = _prechecked(
    stdnum_check("au.acn"), _weighted_sum((-8, -7, -6, -5, -4, -3, -2, -1, -1), 10), is_exact=True
)
_IL_ID = _prechecked(stdnum_check("il.idnr"), lambda d: d != "0" * 9 and luhn_ok(d), is_exact=True)
# Numbers with a birth date in them: most digit runs hold no month and day there.
_ZA_ID = _prechecked(stdnum_check("za.idnr"), _date_digits(2, 4))  # YYMMDD...
_DK_CPR = _prechecked(stdnum_check("dk.cpr"), _date_digits(2, 0))  # DDMMYY...


def _table() -> tuple[NationalId, ...]:
    def w(*words: str) -> re.Pattern[str]:
        return _words(*words, *_GENERIC)

    return (
        NationalId("US_ITIN", ((3, 2, 4), (9,)), _US_ITIN,
                   w("itin", "taxpayer identification", "individual taxpayer", "tin"),
                   (((3, 2, 4), "-"),), 0.65),
        NationalId("ABA_ROUTING", ((9,), (4, 4, 1)), _ABA_ROUTING,
                   _words("routing", "aba", "rtn", "routing transit", "transit number")),
        NationalId("UK_NHS", ((3, 3, 4), (10,)), _UK_NHS,
                   w("nhs", "national health", "health service", "health and care"),
                   (((3, 3, 4), " "),), 0.45),
        NationalId("CA_SIN", ((3, 3, 3), (9,)), _CA_SIN,
                   w("sin", "social insurance", "nas", "assurance sociale")),
        NationalId("IN_AADHAAR", ((4, 4, 4), (12,)), _IN_AADHAAR,
                   w("aadhaa?r", "uidai", "uid", "आधार"), (((4, 4, 4), " -"),), 0.55),
        NationalId("DE_TAX_ID", ((11,), (2, 3, 3, 3), (3, 3, 3, 2)), _DE_IDNR,
                   w(r"steuer[- ]?id\w*", r"steuerliche", r"identifikationsnummer", r"idnr",
                     r"tax id\w*", r"tin", r"steuernummer"),
                   (((2, 3, 3, 3), " "),), 0.6),
        NationalId("PL_PESEL", ((11,),), _PL_PESEL, w("pesel"), bare_score=0.4),
        NationalId("NL_BSN", ((9,), (4, 2, 3), (3, 3, 3)), _NL_BSN,
                   w("bsn", "burgerservicenummer", "sofi(?:nummer)?", "citizen service number")),
        NationalId("BR_CPF", ((3, 3, 3, 2), (11,), (9, 2)), _BR_CPF,
                   w("cpf", "cadastro de pessoas"), (((3, 3, 3, 2), ".-"),), 0.85),
        NationalId("BR_CNPJ", ((2, 3, 3, 4, 2), (14,)), _BR_CNPJ,
                   w("cnpj", "cadastro nacional"), (((2, 3, 3, 4, 2), "./-"),), 0.85),
        NationalId("AU_TFN", ((3, 3, 3), (9,), (3, 3, 2), (8,)), _AU_TFN,
                   w("tfn", "tax file")),
        NationalId("AU_ABN", ((2, 3, 3, 3), (11,)), _AU_ABN,
                   w("abn", "australian business", "business number"), (((2, 3, 3, 3), " "),)),
        NationalId("AU_ACN", ((3, 3, 3), (9,)), _AU_ACN,
                   w("acn", "australian company", "company number")),
        NationalId("AU_MEDICARE", ((4, 5, 1), (4, 5, 1, 1), (10,), (11,)), _au_medicare,
                   w("medicare"), (((4, 5, 1), " "), ((4, 5, 1, 1), " ")), 0.6),
        NationalId("ZA_ID", ((13,), (6, 4, 3), (6, 4, 2, 1)),
                   _ZA_ID,
                   w(r"sa id", r"rsa id", r"south african id\w*", r"identity number"),
                   bare_score=0.4),
        NationalId("KR_RRN", ((6, 7), (13,)), _kr_rrn,
                   w("rrn", "resident registration", "주민등록번호", "주민번호"),
                   (((6, 7), "-"),), 0.6, strict=stdnum_check("kr.rrn")),
        NationalId("SE_PERSONNUMMER", ((6, 4), (8, 4)), _se_personnummer,
                   w("personnummer", "person(?:al)? (?:identity )?number", "personnr"),
                   (((6, 4), "-+"), ((8, 4), "-+")), 0.55),
        NationalId("FI_HETU", ((6, 4),), lambda d: _HETU_CHECK(d[:6] + "-" + d[6:]),
                   w("henkilötunnus", "hetu", "sotu", "personal identity code"),
                   (((6, 4), "-"),), 0.55),
        NationalId("DK_CPR", ((6, 4), (10,)), _DK_CPR,
                   w(r"cpr(?:-?n(?:umme)?r)?", r"personnummer", r"civil registration")),
        NationalId("NO_FNR", ((11,), (6, 5)), _NO_FNR,
                   w("fødselsnummer", "fodselsnummer", "personnummer", "birth number",
                     "national identity number"),
                   (((6, 5), " "),), 0.6, 0.45),
        NationalId("FR_NIR", ((15,), (13, 2), (1, 2, 2, 2, 3, 3, 2)), _FR_NIR,
                   w("nir", "insee", "sécurité sociale", "securite sociale", "sécu", "secu",
                     "social security", "carte vitale"),
                   (((1, 2, 2, 2, 3, 3, 2), " "), ((13, 2), " ")), 0.8, 0.5),
        NationalId("CH_AHV", ((3, 4, 4, 2), (13,)), _CH_AHV,
                   w("ahv", "avs", "ahv-n(?:umme)?r", "sozialversicherungsnummer",
                     "social security"),
                   (((3, 4, 4, 2), "."),), 0.85),
        NationalId("CN_RIC", ((18,), (6, 8, 4)), _cn_ric,
                   w("身份证(?:号(?:码)?)?", "resident id", "id card", "ric", "citizen id"),
                   (((6, 8, 4), " "),), 0.7, 0.6),
        NationalId("IL_ID", ((9,),), _IL_ID,
                   w("teudat zehut", "israeli id", "תעודת זהות", "ת\\.ז")),
        NationalId("BE_NN", ((2, 2, 2, 3, 2), (11,), (6, 3, 2)), _BE_NN,
                   w("rijksregisternummer", "national number", "numéro national",
                     "registre national", "insz", "niss", "rrn"),
                   (((2, 2, 2, 3, 2), ".-"),), 0.8),
        NationalId("TH_PIN", ((1, 4, 5, 2, 1), (13,)), _TH_PIN,
                   w("thai id", "เลขประจำตัวประชาชน", "citizen id"),
                   (((1, 4, 5, 2, 1), "- "),), 0.8),
    )  # fmt: skip


def _au_medicare(digits: str) -> bool:
    """Australian Medicare card: first digit 2-6, weighted check in position 9, issue digit."""
    if len(digits) not in (10, 11) or digits[0] not in "23456" or digits[9] == "0":
        return False
    weights = (1, 3, 7, 9, 1, 3, 7, 9)
    return sum(int(d) * w for d, w in zip(digits[:8], weights, strict=True)) % 10 == int(digits[8])


_SE_CHECK = stdnum_check("se.personnummer")
_HETU_CHECK = stdnum_check("fi.hetu")


def _se_personnummer(digits: str) -> bool:
    """Swedish personnummer (YYMMDD or YYYYMMDD, then four digits, Luhn)."""
    return _SE_CHECK(digits[:-4] + "-" + digits[-4:])


NATIONAL_IDS: tuple[NationalId, ...] = _table()
BY_SHAPE: dict[tuple[int, ...], tuple[NationalId, ...]] = {}
for _row in NATIONAL_IDS:
    for _shape in _row.shapes:
        BY_SHAPE[_shape] = (*BY_SHAPE.get(_shape, ()), _row)
NATIONAL_KINDS: frozenset[str] = frozenset(row.kind for row in NATIONAL_IDS)


def score_national(
    text: str,
    start: int,
    end: int,
    digits: str,
    shape: tuple[int, ...],
    seps: set[str],
    other_cue: Callable[[], bool],
) -> list[Candidate]:
    """Readings of the digit run [start, end) as each identifier written in `shape`."""
    found: list[Candidate] = []
    for row in BY_SHAPE.get(shape, ()):
        if not row.check(digits):
            continue
        if context_near(text, start, end, row.words, after=_AFTER):
            found.append((row.kind, start, end, LABELLED))
            continue
        score = row.bare_score
        if any(s == shape and seps and seps <= set(allowed) for s, allowed in row.distinctive):
            score = row.grouped_score
        if row.strict is not None and row.strict(digits):
            score += 0.1
        if other_cue():
            score -= _OTHER_PENALTY  # "invoice 123.456.789-09": a number that passes by chance
        found.append((row.kind, start, end, round(score, 2)))
    return found
