"""Deterministic synthetic data for the demo, the benchmark and the integration tests.

Pure Python: no Kafka, no faust. Everything is drawn from `random.Random` seeded by the caller, so
the same arguments give the same bytes (unless `received_at` is a callable reading the clock).

Shapes are those of contract v1 (`registry.persons`, `bank.credit-notifications`). Every record
carries the outcome the contract expects for it, worked out *by construction* from the defect that
was planted, never by running the project's decision code: a test that compares the engine with
its own output proves nothing.

Typical use::

    registry = make_registry(100_000, seed=430)
    early, late = split_late(registry, 0.01, seed=430)      # publish `early` first, `late` after
    records = make_orders(early, 5_000, 20, seed=430, scenario=Scenario(),
                          received_at=lambda: datetime.now(ALMATY), id_prefix="DEMO",
                          late=late, late_ratio=0.01)
    expected = summary_of(records)                          # reconcile the outputs against this

Rules that keep the expected outcome unambiguous:
- a line carries at most one defect; an order with a whole-order defect has no line defects;
- lines of valid orders only name living persons; a DECEASED line names a person who died in a
  month strictly before the line's period (and the period is valid), so no earlier check fires;
- harmless variations (case, spaces, ё as е, dropped patronymic, short amount forms) must match.
"""
from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import orjson

from rules import codes
from rules.calendar import ALMATY, month_of
from rules.dates import format_period
from rules.iin import check_digit
from rules.money import format_tiyn

__all__ = [
    "Scenario",
    "SyntheticRecord",
    "make_person",
    "iin_for",
    "make_registry",
    "split_late",
    "registry_changes",
    "make_orders",
    "summary_of",
    "RECIPIENT_NAME",
    "BANK_BICS",
    "MISROUTED_KNPS",
]

# --------------------------------------------------------------------------------------------------
# Names. Surnames are given in the masculine form; the feminine one is derived (_feminine) unless the
# surname is invariant (Сейткали, Ким, Петренко) or listed as an explicit pair (-ұлы / -қызы).
# Spellings with ё are there on purpose: "ё written as е" must still match.

_KZ_SURNAMES = (
    "Ахметов", "Нурланов", "Жумабаев", "Байжанов", "Қасымов", "Әбенов", "Оспанов", "Сулейменов",
    "Искаков", "Токаев", "Бекмуханбетов", "Мусин", "Омаров", "Тулегенов", "Кенжебаев", "Сарсенбаев",
    "Ермеков", "Әлиев", "Жақсылықов", "Нұрмағамбетов", "Бейсенов", "Есенов", "Мұқанов", "Шәріпов",
    "Серікбаев", "Төлеуов", "Сейткали", "Нұрғали",
)
_KZ_SURNAME_PAIRS = (("Қанатұлы", "Қанатқызы"), ("Серікұлы", "Серікқызы"))
_RU_SURNAMES = (
    "Иванов", "Фёдоров", "Петров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Королёв",
    "Семёнов", "Волков", "Морозов", "Никитин", "Павлов", "Захаров", "Новицкий", "Вишневский",
    "Ким", "Пак", "Цой", "Ли", "Петренко", "Шевченко", "Бондаренко", "Коваленко",
)

_KZ_MALE = (
    "Ерлан", "Нұрлан", "Дәурен", "Бауыржан", "Асқар", "Ерболат", "Қайрат", "Серік", "Арман",
    "Данияр", "Ержан", "Жандос", "Мұрат", "Нұржан", "Талғат", "Әлібек", "Ғалым", "Айдос", "Санжар",
    "Темірлан", "Ақжол", "Бекзат", "Азамат", "Дархан", "Марат", "Самат", "Болат", "Ербол",
    "Бахытжан", "Ілияс",
)
_RU_MALE = (
    "Дмитрий", "Сергей", "Александр", "Андрей", "Алексей", "Владимир", "Николай", "Евгений", "Игорь",
    "Олег", "Павел", "Пётр", "Фёдор", "Артём", "Семён", "Михаил", "Виктор", "Юрий", "Денис", "Максим",
)
_KZ_FEMALE = (
    "Айгүл", "Айжан", "Гүлнар", "Жанар", "Әсел", "Дана", "Мадина", "Аружан", "Ақбота", "Гүлжан",
    "Динара", "Жазира", "Назерке", "Салтанат", "Сәуле", "Айым", "Балжан", "Ботагөз", "Меруерт",
    "Перизат", "Раушан", "Алия", "Томирис", "Жұлдыз", "Әйгерім", "Қарлығаш", "Ләззат", "Інкәр",
)
_RU_FEMALE = (
    "Ольга", "Татьяна", "Елена", "Наталья", "Ирина", "Светлана", "Анна", "Мария", "Екатерина", "Юлия",
    "Людмила", "Галина", "Алёна", "Ксения", "Дарья", "Нина", "Вера", "Любовь", "Оксана", "Марина",
)

# Patronymics as (male, female). Kazakh families write them Russian style (Серикович) or Kazakh
# style (Қайратұлы); some write none (patronymic is optional in the contract).
_KZ_PATRONYMICS_RU = tuple((s + "ович", s + "овна") for s in (
    "Серик", "Кайрат", "Ерлан", "Марат", "Нурлан", "Болат", "Бахыт", "Асхат", "Талгат", "Жанат",
    "Мурат", "Аскар",
))
_KZ_PATRONYMICS_KZ = tuple((s + "ұлы", s + "қызы") for s in (
    "Қайрат", "Серік", "Нұрлан", "Бауыржан", "Асқар", "Ерболат", "Мұрат", "Талғат", "Болат",
    "Ержан", "Әлібек", "Дәулет",
))
_RU_PATRONYMICS = (
    ("Петрович", "Петровна"), ("Сергеевич", "Сергеевна"), ("Иванович", "Ивановна"),
    ("Николаевич", "Николаевна"), ("Александрович", "Александровна"), ("Владимирович", "Владимировна"),
    ("Фёдорович", "Фёдоровна"), ("Андреевич", "Андреевна"), ("Алексеевич", "Алексеевна"),
    ("Юрьевич", "Юрьевна"), ("Викторович", "Викторовна"), ("Михайлович", "Михайловна"),
    ("Семёнович", "Семёновна"), ("Дмитриевич", "Дмитриевна"), ("Олегович", "Олеговна"),
)


def _feminine(surname: str) -> str:
    """Russian-pattern feminine surname: Ахметов -> Ахметова, Новицкий -> Новицкая, Ким -> Ким."""
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return surname + "а"
    if surname.endswith(("ский", "цкий")):
        return surname[:-2] + "ая"
    return surname


def _pairs(masculine: Iterable[str]) -> tuple[tuple[str, str], ...]:
    return tuple((s, _feminine(s)) for s in masculine)


_KZ_SURNAME_FORMS = _pairs(_KZ_SURNAMES) + _KZ_SURNAME_PAIRS
_RU_SURNAME_FORMS = _pairs(_RU_SURNAMES)
_SEX_INDEX = {"M": 0, "F": 1}

# Kazakh letters have no Russian-keyboard equivalent; a bank clerk types the nearest Russian letter.
# The result differs after normalization (Kazakh letters stay distinct), so it is a NAME_MISMATCH.
_TRANSLIT = str.maketrans("әғқңөұүһіӘҒҚҢӨҰҮҺІ", "агкноуухиАГКНОУУХИ")
# Where the Russian spelling adds a soft sign (Айгүл -> Айгуль), prefer it: it is what banks send.
_RU_SPELLINGS = {"Айгүл": "Айгуль", "Гүлнар": "Гульнар", "Гүлжан": "Гульжан", "Әсел": "Асель",
                 "Сәуле": "Сауле", "Ләззат": "Ляззат"}
_KZ_LETTERS = frozenset("әғқңөұүһіӘҒҚҢӨҰҮҺІ")


def _plain(s: str) -> str:
    """Just enough normalization to guarantee a planted NAME_MISMATCH is one (not rules.names:
    expectations must not come from the code under test)."""
    return s.casefold().replace("ё", "е")


# --------------------------------------------------------------------------------------------------
# Fast draws. random.choice/randint go through _randbelow and argument checks (~1 µs a call); the
# 100,000-person registry makes ~10 draws a person, so the hot paths use one random() each instead.
# The bias of int(random() * n) is below n / 2**53: irrelevant for synthetic data.

def _one_of(rng: random.Random, seq: Sequence[Any]) -> Any:
    return seq[int(rng.random() * len(seq))]


def _between(rng: random.Random, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi], both included."""
    return lo + int(rng.random() * (hi - lo + 1))


# --------------------------------------------------------------------------------------------------
# Persons

# Registry updates fall in 2025-01-01..2026-09-30, Almaty wall time. Almaty has been UTC+05:00
# without DST since 2024-03-01, so the offset is written as a literal (a zone lookup per person
# costs more than the rest of the timestamp).
_REGISTRY_UPDATED_FROM = datetime(2025, 1, 1)
_REGISTRY_UPDATED_SECONDS = int((datetime(2026, 9, 30) - _REGISTRY_UPDATED_FROM).total_seconds())
_CITIES = (
    ("Астана", "010000"), ("Алматы", "050000"), ("Шымкент", "160000"), ("Караганда", "100000"),
    ("Актобе", "030000"), ("Павлодар", "140000"), ("Усть-Каменогорск", "070000"), ("Атырау", "060000"),
    ("Костанай", "110000"), ("Тараз", "080000"),
)
_STREETS = ("Абая", "Кенесары", "Сейфуллина", "Толе би", "Достык", "Жибек жолы", "Пушкина", "Назарбаева",
            "Момышулы", "Байтурсынова", "Гагарина", "Республики")
_FOREIGN_CITIZENSHIPS = ("RU", "UZ", "KG", "CN", "TR")


def _century_digit(year: int, sex: str) -> int:
    """IIN digit 7: 1/2 for the 1800s, 3/4 for the 1900s, 5/6 for the 2000s; odd male, even female."""
    century = year // 100
    if not 18 <= century <= 20:
        raise ValueError(f"an IIN cannot encode birth year {year}")
    return 2 * (century - 18) + (1 if sex == "M" else 2)


def _iin_prefix(birth: date, sex: str) -> str:
    """IIN digits 1-7: YYMMDD and the century/sex digit."""
    return f"{birth.year % 100:02d}{birth.month:02d}{birth.day:02d}{_century_digit(birth.year, sex)}"


def iin_for(birth: date, sex: str, serial: int) -> str | None:
    """The IIN for a birth date, sex and 4-digit serial; None when that serial is never issued."""
    first11 = f"{_iin_prefix(birth, sex)}{serial:04d}"
    digit = check_digit(first11)
    return None if digit is None else first11 + str(digit)


def _random_iin(rng: random.Random, birth: date, sex: str) -> str:
    prefix = _iin_prefix(birth, sex)
    # About 1 serial in 121 is never issued (both passes give 10): draw again.
    while True:
        first11 = f"{prefix}{int(rng.random() * 10_000):04d}"
        digit = check_digit(first11)
        if digit is not None:
            return first11 + str(digit)


def _names(rng: random.Random, sex: str) -> tuple[str, str, str | None]:
    """(surname, name, patronymic) of one person: 70 % Kazakh, 30 % Russian/Korean/Ukrainian."""
    i = _SEX_INDEX[sex]
    if rng.random() < 0.7:
        surname = _one_of(rng, _KZ_SURNAME_FORMS)[i]
        name = _one_of(rng, _KZ_MALE if i == 0 else _KZ_FEMALE)
        u = rng.random()
        if u < 0.45:
            patronymic = _one_of(rng, _KZ_PATRONYMICS_RU)[i]
        elif u < 0.85:
            patronymic = _one_of(rng, _KZ_PATRONYMICS_KZ)[i]
        else:
            patronymic = None
    else:
        surname = _one_of(rng, _RU_SURNAME_FORMS)[i]
        name = _one_of(rng, _RU_MALE if i == 0 else _RU_FEMALE)
        patronymic = _one_of(rng, _RU_PATRONYMICS)[i] if rng.random() < 0.95 else None
    return surname, name, patronymic


def _document(rng: random.Random, birth: date) -> dict[str, Any] | None:
    first = max(birth.year + 16, 2010)  # an identity card is issued from 16; data from 2010 on
    if first > 2025:
        return None
    issued = date(_between(rng, first, 2025), _between(rng, 1, 12), _between(rng, 1, 28))
    number = _between(rng, 0, 10**8 - 1)
    if rng.random() < 0.8:
        return {"kind": "id_card", "series": None, "number": f"0{number:08d}",
                "issued_on": issued.isoformat(), "issuer": "МВД РК"}
    return {"kind": "passport", "series": None, "number": f"N{number:08d}",
            "issued_on": issued.isoformat(), "issuer": "МВД РК"}


def _address(rng: random.Random) -> dict[str, Any]:
    city, index = _one_of(rng, _CITIES)
    return {"text": f"г. {city}, ул. {_one_of(rng, _STREETS)}, {_between(rng, 1, 250)}, кв. {_between(rng, 1, 180)}",
            "postal_index": index}


def make_person(rng: random.Random, *, sex: str | None = None,
                birth_year_range: tuple[int, int] = (1960, 2006)) -> dict[str, Any]:
    """One living `registry.persons` record with a valid IIN that encodes its birth date and sex.

    Uniqueness of the IIN is the caller's business (make_registry keeps a set).
    """
    if sex is None:
        sex = "M" if rng.random() < 0.5 else "F"
    elif sex not in _SEX_INDEX:
        raise ValueError(f"sex must be 'M' or 'F', not {sex!r}")
    lo, hi = birth_year_range
    birth = date.fromordinal(_between(rng, date(lo, 1, 1).toordinal(), date(hi, 12, 31).toordinal()))
    surname, name, patronymic = _names(rng, sex)
    updated = _REGISTRY_UPDATED_FROM + timedelta(seconds=int(rng.random() * _REGISTRY_UPDATED_SECONDS))
    return {
        "iin": _random_iin(rng, birth, sex),
        "surname": surname,
        "name": name,
        "patronymic": patronymic,
        "birth_date": birth.isoformat(),
        "sex": sex,
        "citizenship": "KZ" if rng.random() < 0.98 else _one_of(rng, _FOREIGN_CITIZENSHIPS),
        "death_date": None,
        "updated_at": updated.isoformat() + "+05:00",
    }


def _rng(seed: int | str, purpose: str) -> random.Random:
    # One independent stream per purpose: make_registry, split_late and make_orders called with the
    # same seed must not replay each other's draws. str seeds hash with SHA-512: stable across runs.
    return random.Random(f"esep.synthetic:{purpose}:{seed}")


def make_registry(n: int, seed: int, *, deceased_ratio: float = 0.005, details_ratio: float = 0.3,
                  death_range: tuple[date, date] = (date(2019, 1, 1), date(2025, 6, 30)),
                  birth_year_range: tuple[int, int] = (1960, 2006)) -> list[dict[str, Any]]:
    """`n` registry.persons records with unique valid IINs.

    deceased_ratio: share with a death_date inside death_range (the pool for DECEASED lines; the
      default range ends before any period a demo or benchmark of 2026 pays for).
    details_ratio: share carrying the optional `document` and `address`.
    """
    rng = _rng(seed, "registry")
    first_death, last_death = death_range[0].toordinal(), death_range[1].toordinal()
    seen: set[str] = set()
    persons: list[dict[str, Any]] = []
    while len(persons) < n:
        person = make_person(rng, birth_year_range=birth_year_range)
        if person["iin"] in seen:
            continue
        seen.add(person["iin"])
        born = date.fromisoformat(person["birth_date"]).toordinal()
        if rng.random() < deceased_ratio and born < last_death:
            died = date.fromordinal(rng.randint(max(first_death, born + 1), last_death))
            person["death_date"] = died.isoformat()
            # The registry learns of a death after it happens (kept in the +05:00 era, see above).
            noted = max(died + timedelta(days=rng.randint(1, 60)), date(2024, 3, 1))
            person["updated_at"] = f"{noted.isoformat()}T09:00:00+05:00"
        if rng.random() < details_ratio:
            document = _document(rng, date.fromisoformat(person["birth_date"]))
            if document is not None:
                person["document"] = document
            person["address"] = _address(rng)
        persons.append(person)
    return persons


def split_late(registry: Sequence[dict[str, Any]], ratio: float, seed: int
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(early, late): `late` is a share `ratio` of the living persons, held back so that a caller can
    publish it after the notifications that name them (the registry lagging behind the bank).
    Deceased persons always stay early: they are the DECEASED pool."""
    rng = _rng(seed, "late")
    early: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    for person in registry:
        (late if person["death_date"] is None and rng.random() < ratio else early).append(person)
    return early, late


def registry_changes(registry: Sequence[dict[str, Any]], n: int, seed: int | str, updated_at: datetime
                     ) -> list[tuple[str, dict[str, Any] | None]]:
    """`n` changes to living persons already in the registry, as (iin, new record or None for a
    deletion), for a registry that changes while notifications naming them are decided: half get
    a new surname (a marriage, a correction), a quarter a death date (the first day of the month
    before `updated_at`), a quarter are deleted. A line decided before the change must not be
    decided again differently after a redelivery."""
    rng = _rng(seed, "changes")
    living = [p for p in registry if p["death_date"] is None]
    stamp = updated_at.astimezone(ALMATY).isoformat(timespec="seconds")
    died = (updated_at.astimezone(ALMATY).date().replace(day=1) - timedelta(days=1)).replace(day=1)
    out: list[tuple[str, dict[str, Any] | None]] = []
    for person in rng.sample(living, min(n, len(living))):
        draw = rng.random()
        if draw < 0.5:
            renamed = _one_of(rng, _KZ_SURNAME_FORMS)[_SEX_INDEX[person["sex"]]]
            if _plain(renamed) == _plain(person["surname"]):
                renamed += "-" + _one_of(rng, _RU_SURNAME_FORMS)[_SEX_INDEX[person["sex"]]]
            out.append((person["iin"], {**person, "surname": renamed, "updated_at": stamp}))
        elif draw < 0.75:
            out.append((person["iin"], {**person, "death_date": died.isoformat(), "updated_at": stamp}))
        else:
            out.append((person["iin"], None))
    return out


# --------------------------------------------------------------------------------------------------
# Orders

RECIPIENT_NAME = "НАО «Государственная корпорация «Правительство для граждан»"
# Real KZ BICs; the 3-digit IBAN bank codes next to them are illustrative, not authoritative.
BANK_BICS = {"HSBKKZKX": "601", "KCJBKZKX": "856", "CASPKZKA": "722", "HCSKKZKA": "886",
             "ALMNKZKA": "826", "IRTYKZKA": "125", "TSESKZKA": "998", "EURIKZKA": "948"}
_BICS = tuple(BANK_BICS)
MISROUTED_KNPS = ("010", "019", "013", "089", "098", "121", "122", "123", "124")
_FOREIGN_CURRENCIES = ("USD", "RUB", "EUR", "CNY")
_PAYER_FORMS = ("ТОО", "ТОО", "ТОО", "АО", "ГУ", "КГП")
_PAYER_WORDS = ("Дала", "Құрылыс", "Астана", "Сервис", "Транс", "Алтын", "Жол", "Нұр", "Строй", "Инвест",
                "Агро", "Темір", "Сарыарқа", "Логистик", "Медиа", "Тех", "Energy", "Kaz", "Өркен", "Береке")

# Scenario field -> the reason it plants, in the contract's check order.
_ORDER_DEFECTS = (
    ("misrouted_knp", codes.KNP_NOT_ACCEPTED),
    ("wrong_currency", codes.CURRENCY_NOT_ACCEPTED),
    ("duplicate_line_no", codes.DUPLICATE_LINE_NO),
    ("total_mismatch", codes.TOTAL_MISMATCH),
)
_LINE_DEFECTS = (
    ("invalid_iin", codes.INVALID_IIN),
    ("period_after_receipt", codes.PERIOD_INVALID),
    ("zero_amount", codes.AMOUNT_INVALID),
    ("unknown_iin", codes.IIN_NOT_FOUND),
    ("name_mismatch", codes.NAME_MISMATCH),
    ("birth_date_mismatch", codes.BIRTH_DATE_MISMATCH),
    ("deceased", codes.DECEASED),
)
_MALFORMED = (("not_json", "not_json"), ("not_utf8", "not_utf8"), ("schema", "schema"))
_LATE = "LATE"  # internal line defect: a person the consumers' registry does not have yet


@dataclass(frozen=True)
class Scenario:
    """Mix of a synthetic stream. Defaults suit the demo: mostly valid, every defect visible in a
    run of ~1,500 orders. Use Scenario.clean() or Scenario.benchmark() for the other uses."""

    # Whole-order defects: share of orders. Such orders have no line defects.
    misrouted_knp: float = 0.01          # KNP_NOT_ACCEPTED: 010, 019, 121... (other systems' codes)
    wrong_currency: float = 0.005        # CURRENCY_NOT_ACCEPTED
    duplicate_line_no: float = 0.005     # DUPLICATE_LINE_NO (needs 2+ lines)
    total_mismatch: float = 0.01         # TOTAL_MISMATCH: total off, unsummable line amount, no lines
    # Line defects: share of the lines of orders without a whole-order defect.
    invalid_iin: float = 0.008           # INVALID_IIN: wrong check digit, 11 digits, never issued
    period_after_receipt: float = 0.004  # PERIOD_INVALID: after the month of receipt, 2026-13, missing
    zero_amount: float = 0.004           # AMOUNT_INVALID: "0.00"
    unknown_iin: float = 0.01            # IIN_NOT_FOUND: valid IIN nobody in the registry has
    name_mismatch: float = 0.015         # NAME_MISMATCH: Айгүл -> Айгуль, another surname/name
    birth_date_mismatch: float = 0.008   # BIRTH_DATE_MISMATCH: typo, or a date that is not real
    deceased: float = 0.004              # DECEASED: died before the period (make_registry(deceased_ratio>0))
    # Extra records, as a share of n_orders (they do not use up the n_orders well-formed ones).
    repeat: float = 0.02                 # the same notification sent again, byte for byte
    not_json: float = 0.003
    not_utf8: float = 0.003
    schema: float = 0.006                # missing field, amount as a JSON number, offset-less time...
    # Shape of well-formed data (not defects: none of these changes an outcome).
    harmless_variation: float = 0.2      # line: UPPER case, spaces, ё as е, patronymic dropped/added
    short_amount: float = 0.05           # line: "4250" / "4250.5" instead of "4250.00"
    penalty_knp: float = 0.1             # order: KNP 017 (penalty) instead of 012
    line_period: float = 0.7             # line: repeats a period of its own
    arrears: float = 0.05                # line: pays for an earlier month (2-6 months back)
    order_without_period: float = 0.05   # order: no period; every line carries its own
    received_at_utc: float = 0.05        # order: received_at written in UTC ("Z"), not +05:00

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"Scenario.{f.name} must be a share in [0, 1], not {value!r}")
        for group, names in (("order defects", [n for n, _ in _ORDER_DEFECTS]),
                             ("line defects", [n for n, _ in _LINE_DEFECTS]),
                             ("malformed records", [n for n, _ in _MALFORMED])):
            if sum(getattr(self, n) for n in names) > 1.0:
                raise ValueError(f"Scenario: the shares of {group} add up to more than 1")

    @classmethod
    def clean(cls) -> Scenario:
        """Every line posts: no defects, no repeats, no malformed records."""
        zero = {name: 0.0 for name, _ in _ORDER_DEFECTS + _LINE_DEFECTS + _MALFORMED}
        return cls(**zero, repeat=0.0)

    @classmethod
    def benchmark(cls) -> Scenario:
        """About 3 % of lines refunded (the design notes' workload), few whole-order refunds."""
        return cls(misrouted_knp=0.002, wrong_currency=0.001, duplicate_line_no=0.001, total_mismatch=0.002,
                   invalid_iin=0.004, period_after_receipt=0.002, zero_amount=0.002, unknown_iin=0.006,
                   name_mismatch=0.01, birth_date_mismatch=0.004, deceased=0.002,
                   repeat=0.005, not_json=0.0005, not_utf8=0.0005, schema=0.001)


@dataclass(frozen=True, slots=True)
class SyntheticRecord:
    """One record for `bank.credit-notifications` and what the contract expects of it.

    kind "order": expect = {notification_id, knp, order_reason, lines {line_no: reason or None},
      line_count, amounts {line_no: tiyn or None}, total_tiyn, late_lines [line_no], status,
      posted_tiyn, refunded_tiyn} for decide-at-once (late lines are IIN_NOT_FOUND there).
    kind "repeat": expect = {"repeats": notification_id}; nothing new may come of it.
    kind "malformed": expect = {"error_kind": "not_json"|"not_utf8"|"schema", "variant": str,
      "notification_id": the order it garbles, which follows it}. key: that id, or None (1 in 10).
    """

    key: bytes | None
    value: bytes
    kind: str
    expect: dict[str, Any] | None


class _Mix:
    """Outcomes with shares, drawn with one random() against cumulative bounds: at most one
    outcome per draw, by construction."""

    def __init__(self, table: Sequence[tuple[str, str]], shares: Callable[[str], float]) -> None:
        self.outcomes = [outcome for _, outcome in table]
        self.bounds: list[float] = []
        total = 0.0
        for name, _ in table:
            total += shares(name)
            self.bounds.append(total)
        self.total = total

    def draw(self, rng: random.Random) -> str | None:
        u = rng.random()
        if u >= self.total:  # the common case: nothing planted
            return None
        return self.outcomes[bisect_right(self.bounds, u)]


def _add_months(year: int, month: int, k: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + k
    return index // 12, index % 12 + 1


def _random_bin(rng: random.Random) -> str:
    """BIN: YYMM of registration, type (4 resident, 5 non-resident, 6 joint entrepreneur), unit
    (0 head, 1 branch, 2 representative office, 3 farm), serial, check digit."""
    while True:
        kind = rng.choices("456", weights=(90, 5, 5))[0]
        unit = rng.choices("0123", weights=(80, 12, 4, 4))[0]
        first11 = f"{rng.randint(95, 125) % 100:02d}{rng.randint(1, 12):02d}{kind}{unit}{rng.randrange(10**5):05d}"
        digit = check_digit(first11)
        if digit is not None:
            return first11 + str(digit)


def _iban(rng: random.Random, bank_code: str) -> str:
    """A KZ IBAN (20 characters) with correct ISO 13616 check digits."""
    bban = f"{bank_code}KZT{rng.randrange(10**10):010d}"
    # Letters become 10..35, country code and "00" move to the end, 98 - (that mod 97).
    numeric = "".join(str(int(c, 36)) for c in bban + "KZ00")
    return f"KZ{98 - int(numeric) % 97:02d}{bban}"


def _payers(rng: random.Random, n: int) -> list[dict[str, str]]:
    # A small pool, reused: employers pay every month, and it keeps payers realistic in a demo.
    payers = []
    for _ in range(n):
        words = " ".join(rng.sample(_PAYER_WORDS, rng.randint(1, 2)))
        payers.append({"name": f"{rng.choice(_PAYER_FORMS)} «{words}»", "bin_iin": _random_bin(rng),
                       "iban": _iban(rng, rng.choice(tuple(BANK_BICS.values())))})
    return payers


def _amount_tiyn(rng: random.Random, knp: str) -> int:
    """Contributions in the 2026 range 4,250..29,750 tenge, tiyn sometimes; penalties are small."""
    if knp == "017":
        return _between(rng, 100_00, 5000_99)
    tiyn = _between(rng, 4250, 29750) * 100
    if tiyn < 29750_00 and rng.random() < 0.2:
        tiyn += _between(rng, 1, 99)
    return tiyn


def _short_form(tiyn: int) -> str:
    """The same amount without trailing zeros: 425000 -> "4250", 425050 -> "4250.5"."""
    text = format_tiyn(tiyn)
    return text[:-3] if text.endswith(".00") else text[:-1] if text.endswith("0") else text


class _Pools:
    """Who lines can name: living persons (valid lines), the deceased sorted by month of death,
    late persons, and the IINs nobody may be given as 'unknown'."""

    def __init__(self, registry: Sequence[dict[str, Any]], late: Sequence[dict[str, Any]]) -> None:
        self.living = [p for p in registry if p.get("death_date") is None]
        dead = sorted((p for p in registry if p.get("death_date") is not None), key=lambda p: p["death_date"])
        self.dead = dead
        self.dead_months = [(int(p["death_date"][:4]), int(p["death_date"][5:7])) for p in dead]
        self.late = list(late)
        self.taken = {p["iin"] for p in registry}
        self.taken.update(p["iin"] for p in late)
        if len(self.taken) != len(registry) + len(late):
            raise ValueError("`late` persons must not be in `registry` (pass split_late's early part)")
        if not self.living:
            raise ValueError("make_orders needs a registry with living persons")

    def died_before(self, rng: random.Random, period: tuple[int, int]) -> dict[str, Any]:
        count = bisect_left(self.dead_months, period)  # those whose month of death < period
        if count == 0:
            raise ValueError(f"Scenario asks for DECEASED lines but nobody in the registry died before "
                             f"{format_period(period)}: use make_registry(deceased_ratio>0) or deceased=0")
        return self.dead[rng.randrange(count)]

    def stranger(self, rng: random.Random) -> dict[str, Any]:
        while True:
            person = make_person(rng)
            if person["iin"] not in self.taken:
                return person


# -- line defects: each returns the line with exactly one planted problem

def _invalid_iin(rng: random.Random, line: dict[str, Any]) -> None:
    iin = line["iin"]
    u = rng.random()
    if u < 0.8:  # one wrong check digit: the commonest typo that passes a length check
        line["iin"] = iin[:11] + str((int(iin[11]) + rng.randint(1, 9)) % 10)
    elif u < 0.9:
        line["iin"] = iin[:11]
    else:  # a number the check-digit rule never issues, whatever its last digit
        while True:
            first11 = iin[:7] + f"{rng.randrange(10_000):04d}"
            if check_digit(first11) is None:
                line["iin"] = first11 + str(rng.randrange(10))
                return


def _period_invalid(rng: random.Random, line: dict[str, Any], receipt: tuple[int, int], order_has_period: bool) -> None:
    u = rng.random()
    if not order_has_period and u < 0.3:
        line.pop("period", None)  # missing on both line and order
    elif u < 0.8:
        line["period"] = format_period(_add_months(*receipt, rng.randint(1, 3)))
    else:
        line["period"] = f"{receipt[0]:04d}-{rng.choice(('00', '13'))}"  # not a real month


def _name_mismatch(rng: random.Random, line: dict[str, Any], sex: str) -> None:
    """Change surname or name so that no normalization can reconcile it."""
    for field in ("name", "surname"):
        value = line[field]
        if _KZ_LETTERS.intersection(value):  # a transliteration variant, as banks really send
            line[field] = _RU_SPELLINGS.get(value) or value.translate(_TRANSLIT)
            return
    i = _SEX_INDEX[sex]
    if rng.random() < 0.5:
        pool = [forms[i] for forms in _KZ_SURNAME_FORMS + _RU_SURNAME_FORMS]
        field = "surname"
    else:
        pool = list((_KZ_MALE + _RU_MALE) if i == 0 else (_KZ_FEMALE + _RU_FEMALE))
        field = "name"
    current = _plain(line[field])
    line[field] = rng.choice([v for v in pool if _plain(v) != current])


def _birth_date_mismatch(rng: random.Random, line: dict[str, Any]) -> None:
    born = date.fromisoformat(line["birth_date"])
    u = rng.random()
    if u < 0.1:  # not a real date: a birth-date mismatch, not a schema error (Clarifications)
        line["birth_date"] = f"{born.year:04d}-02-{rng.choice((30, 31))}"
        return
    if u < 0.4 and born.day <= 12 and born.day != born.month:  # day and month swapped
        line["birth_date"] = date(born.year, born.day, born.month).isoformat()
        return
    if u < 0.6:  # the year one off
        line["birth_date"] = born.replace(year=born.year + rng.choice((-1, 1)), day=min(born.day, 28)).isoformat()
        return
    shift = rng.choice((-1, 1)) * rng.randint(1, 27)
    line["birth_date"] = (born + timedelta(days=shift)).isoformat()


def _harmless(rng: random.Random, line: dict[str, Any], person: dict[str, Any]) -> None:
    """A variation the matching rules absorb (contract, Semantics): must still match."""
    u = rng.random()
    if u < 0.3:
        line["surname"] = line["surname"].upper()
    elif u < 0.5:
        field = rng.choice(("surname", "name"))
        line[field] = rng.choice(("", " ", "  ")) + line[field] + rng.choice((" ", "  "))
    elif u < 0.7 and any("ё" in (line[f] or "") for f in ("surname", "name", "patronymic")):
        for f in ("surname", "name", "patronymic"):
            if line[f]:
                line[f] = line[f].replace("ё", "е")
    elif person["patronymic"] is not None:
        if rng.random() < 0.5:
            line["patronymic"] = None  # compared only where both sides have one
        else:
            del line["patronymic"]     # absent and null are the same
    else:  # the registry has none: a patronymic on the line alone is not compared
        line["patronymic"] = rng.choice(_RU_PATRONYMICS)[_SEX_INDEX[person["sex"]]]


def _break_total(rng: random.Random, order: dict[str, Any], amounts: list[int | None]) -> int:
    """Plant TOTAL_MISMATCH; returns total_amount in tiyn as sent."""
    lines = order["lines"]
    total = sum(a for a in amounts if a is not None)
    u = rng.random()
    if u < 0.1:  # no lines at all: nothing to sum
        order["lines"] = []
        amounts.clear()
        return total
    if u < 0.4:  # a line amount that cannot be summed: negative, 3 decimals, comma, a space
        j = rng.randrange(len(lines))
        text = format_tiyn(amounts[j])
        lines[j]["amount"] = rng.choice(("-" + text, text + "5", text.replace(".", ","), " " + text))
        amounts[j] = None
        return total
    delta = rng.randint(1, 100_000) * rng.choice((-1, 1))
    return total + delta if total + delta > 0 else total - delta


def _status(line_count: int, posted: int) -> str:
    if posted == line_count and line_count > 0:
        return "posted"
    return "refunded" if posted == 0 else "partially_refunded"


def _expectation(order: dict[str, Any], order_reason: str | None, defects: list[str | None],
                 amounts: list[int | None], total_tiyn: int) -> dict[str, Any]:
    """The outcome of a well-formed order with the hold off (decide at once)."""
    line_nos = [line["line_no"] for line in order["lines"]]
    if order_reason is not None:
        # The whole order is refunded: every line under the order's reason, the money received back.
        reasons = {n: order_reason for n in line_nos}
        posted_tiyn = posted = 0
    else:
        reasons = {n: (codes.IIN_NOT_FOUND if d == _LATE else d) for n, d in zip(line_nos, defects)}
        posted_tiyn = sum(a for a, d in zip(amounts, defects) if d is None)
        posted = defects.count(None)
    return {
        "notification_id": order["notification_id"],
        "knp": order["knp"],
        "order_reason": order_reason,
        "lines": reasons,
        "line_count": len(line_nos),
        "amounts": dict(zip(line_nos, amounts)),
        "total_tiyn": total_tiyn,
        "late_lines": [n for n, d in zip(line_nos, defects) if d == _LATE],
        "status": _status(len(line_nos), posted),
        "posted_tiyn": posted_tiyn,
        "refunded_tiyn": total_tiyn - posted_tiyn,
    }


def _stamp(ts: datetime, utc: bool) -> str:
    spec = "milliseconds" if ts.microsecond else "seconds"
    if utc:
        return ts.astimezone(timezone.utc).isoformat(timespec=spec).replace("+00:00", "Z")
    return ts.astimezone(ALMATY).isoformat(timespec=spec)


# Periods repeat on almost every line: format each (year, month) once.
_period_text = lru_cache(maxsize=None)(format_period)


@dataclass(frozen=True, slots=True)
class _OrderPlan:
    receipt: tuple[int, int]       # month of receipt, Asia/Almaty
    knp: str
    has_period: bool               # the order carries a period (else every line has its own)


class _OrderMaker:
    """Builds well-formed notifications with their planted defects; one per make_orders call."""

    def __init__(self, rng: random.Random, scenario: Scenario, pools: _Pools, id_prefix: str,
                 late_ratio: float, n_payers: int) -> None:
        self.rng = rng
        self.scenario = scenario
        self.pools = pools
        self.id_prefix = id_prefix
        self.payers = _payers(rng, n_payers)
        self.order_defects = _Mix(_ORDER_DEFECTS, lambda n: getattr(scenario, n))
        self.line_defects = _Mix(_LINE_DEFECTS + (("late", _LATE),),
                                 lambda n: late_ratio if n == "late" else getattr(scenario, n))
        if late_ratio > 0 and not pools.late:
            raise ValueError("late_ratio > 0 needs the `late` persons (see split_late)")

    def order(self, i: int, n_lines: int, received: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        """One well-formed notification and its expected outcome."""
        if received.tzinfo is None or received.utcoffset() is None:
            raise ValueError("received_at must be timezone-aware")
        rng, scenario = self.rng, self.scenario
        order_reason = self.order_defects.draw(rng)
        if order_reason == codes.DUPLICATE_LINE_NO and n_lines < 2:
            order_reason = None  # one line has no number to duplicate
        knp = "017" if rng.random() < scenario.penalty_knp else "012"
        if order_reason == codes.KNP_NOT_ACCEPTED:
            knp = rng.choice(MISROUTED_KNPS)
        currency = rng.choice(_FOREIGN_CURRENCIES) if order_reason == codes.CURRENCY_NOT_ACCEPTED else "KZT"
        plan = _OrderPlan(month_of(received), knp, rng.random() >= scenario.order_without_period)
        # Whole-order defects come alone: the lines of such an order are clean.
        defects = [None] * n_lines if order_reason else self._line_defects(n_lines)
        used: set[str] = set()
        lines, amounts = [], []
        for line_no, defect in enumerate(defects, start=1):
            line, tiyn = self._line(plan, line_no, defect, used)
            lines.append(line)
            amounts.append(tiyn)
        doc_day = (received.astimezone(ALMATY).date() - timedelta(days=1)).isoformat()
        order: dict[str, Any] = {
            "notification_id": f"{self.id_prefix}-{i:06d}",
            "bank_bic": _one_of(rng, _BICS),
            "document_number": str(_between(rng, 1, 99_999)),
            "document_date": doc_day,
            "sent_date": doc_day,
            "received_at": _stamp(received, rng.random() < scenario.received_at_utc),
            "knp": knp,
            "payer": dict(_one_of(rng, self.payers)),
            "recipient_name": RECIPIENT_NAME,
            "total_amount": "",  # filled below, keeping the contract's field order
            "currency": currency,
        }
        if plan.has_period:
            order["period"] = _period_text(_add_months(*plan.receipt, -1))
        order["lines"] = lines
        total = sum(amounts)
        if order_reason == codes.DUPLICATE_LINE_NO:
            a, b = rng.sample(range(n_lines), 2)
            lines[b]["line_no"] = lines[a]["line_no"]
        elif order_reason == codes.TOTAL_MISMATCH:
            total = _break_total(rng, order, amounts)
            if total == 0:  # total_amount must stay positive, or the record is a dead letter
                total = 1
        order["total_amount"] = format_tiyn(total)
        return order, _expectation(order, order_reason, defects, amounts, total)

    def _line_defects(self, n: int) -> list[str | None]:
        defects = [self.line_defects.draw(self.rng) for _ in range(n)]
        # A zero line is refunded alone; if every line were zero the total would be 0.00, which is a
        # dead letter (total_amount must be positive), not n AMOUNT_INVALID refunds.
        if all(d == codes.AMOUNT_INVALID for d in defects):
            defects[-1] = None
        return defects

    def _person(self, defect: str | None, period: tuple[int, int], used: set[str]) -> dict[str, Any]:
        rng, pools = self.rng, self.pools
        if defect == codes.DECEASED:
            return pools.died_before(rng, period)
        if defect == codes.IIN_NOT_FOUND:
            return pools.stranger(rng)
        if defect == _LATE:
            return _one_of(rng, pools.late)
        person = _one_of(rng, pools.living)
        while person["iin"] in used:  # one person once per order
            person = _one_of(rng, pools.living)
        return person

    def _line(self, plan: _OrderPlan, line_no: int, defect: str | None,
              used: set[str]) -> tuple[dict[str, Any], int]:
        """One line and its amount in tiyn, with `defect` planted (a reason code, _LATE or None)."""
        rng, scenario = self.rng, self.scenario
        period = _add_months(*plan.receipt, -1)
        own_period = not plan.has_period or rng.random() < scenario.line_period
        if own_period and rng.random() < scenario.arrears:
            period = _add_months(*plan.receipt, -_between(rng, 2, 6))
        person = self._person(defect, period, used)
        used.add(person["iin"])
        if defect == codes.AMOUNT_INVALID:
            tiyn, amount = 0, rng.choice(("0.00", "0", "0.0"))
        else:
            tiyn = _amount_tiyn(rng, plan.knp)
            amount = _short_form(tiyn) if rng.random() < scenario.short_amount else format_tiyn(tiyn)
        line: dict[str, Any] = {"line_no": line_no, "iin": person["iin"], "surname": person["surname"],
                                "name": person["name"], "patronymic": person["patronymic"],
                                "birth_date": person["birth_date"], "amount": amount}
        if own_period:
            line["period"] = _period_text(period)
        if defect == codes.INVALID_IIN:
            _invalid_iin(rng, line)
        elif defect == codes.PERIOD_INVALID:
            _period_invalid(rng, line, plan.receipt, plan.has_period)
        elif defect == codes.NAME_MISMATCH:
            _name_mismatch(rng, line, person["sex"])
        elif defect == codes.BIRTH_DATE_MISMATCH:
            _birth_date_mismatch(rng, line)
        # Not on a name mismatch: that line's names were just chosen to fail.
        if defect != codes.NAME_MISMATCH and rng.random() < scenario.harmless_variation:
            _harmless(rng, line, person)
        return line, tiyn


# -- malformed records: each must fail exactly as its kind says

_MT102 = (":20:{num}\n:32A:{day}KZT{total}\n:50:/D/{iban}\n/NAME/{payer}\n/IDN/{bin}\n"
          ":70:/NUM/{num}/DATE/{day}/KNP/012\n-}}")


def _not_json(rng: random.Random, order: dict[str, Any], text: str) -> tuple[bytes, str]:
    u = rng.random()
    if u < 0.5:  # cut short, e.g. by a size limit; any proper prefix of an object is not JSON
        return text[: rng.randint(1, len(text) - 1)].encode("utf-8"), "truncated"
    if u < 0.8:  # a Python repr sent instead of JSON: single quotes, None
        return repr(order).encode("utf-8"), "python_repr"
    mt = _MT102.format(num=order["document_number"], day=order["document_date"].replace("-", "")[2:],
                       total=order["total_amount"].replace(".", ","), iban=order["payer"]["iban"],
                       payer=order["payer"]["name"], bin=order["payer"]["bin_iin"])
    return ("{1:F01" + order["bank_bic"] + "}{4:\n" + mt).encode("utf-8"), "mt102_text"


def _not_utf8(rng: random.Random, order: dict[str, Any], text: str) -> tuple[bytes, str]:
    if rng.random() < 0.6:
        # A legacy adapter writing Windows-1251: Cyrillic lead bytes with no continuation bytes.
        # Kazakh letters are not in cp1251 and become "?"; recipient_name guarantees Cyrillic.
        return text.encode("cp1251", errors="replace"), "cp1251"
    # One byte that is never UTF-8, inside a string value: read as Latin-1 the record would be JSON,
    # so the encoding is its only fault.
    raw = text.encode("utf-8")
    at = raw.index(b'"recipient_name":"') + len(b'"recipient_name":"')
    return raw[:at] + b"\xff" + raw[at:], "stray_0xff"


def _encode(obj: Any) -> bytes:
    # orjson: compact UTF-8 JSON, keys in insertion order, deterministic, ~10x the stdlib's speed.
    return orjson.dumps(obj)


def _schema_error(rng: random.Random, order: dict[str, Any]) -> tuple[dict[str, Any], str]:
    bad = orjson.loads(_encode(order))  # a deep copy to spoil
    lines = bad["lines"]
    choices = ["missing_top", "missing_payer", "total_number", "total_not_positive", "naive_time",
               "unreal_date", "lines_object"]
    if lines:
        choices += ["missing_line", "amount_number", "line_no_string", "iin_number"]
    variant = rng.choice(choices)
    if variant == "missing_top":
        field = rng.choice(("notification_id", "bank_bic", "document_number", "document_date", "sent_date",
                            "received_at", "knp", "payer", "recipient_name", "total_amount", "currency", "lines"))
        del bad[field]
        variant += ":" + field
    elif variant == "missing_payer":
        field = rng.choice(("name", "bin_iin", "iban"))
        del bad["payer"][field]
        variant += ":" + field
    elif variant == "total_number":
        bad["total_amount"] = float(bad["total_amount"])
    elif variant == "total_not_positive":
        bad["total_amount"] = rng.choice(("0.00", "-" + bad["total_amount"], bad["total_amount"] + "1", "abc"))
    elif variant == "naive_time":
        bad["received_at"] = bad["received_at"][:19]
    elif variant == "unreal_date":
        field = rng.choice(("document_date", "sent_date"))
        bad[field] = bad[field][:8] + "32"
        variant += ":" + field
    elif variant == "lines_object":
        bad["lines"] = {str(line["line_no"]): line for line in lines}
    else:
        line = rng.choice(lines)
        if variant == "missing_line":
            field = rng.choice(("line_no", "iin", "surname", "name", "birth_date", "amount"))
            del line[field]
            variant += ":" + field
        elif variant == "amount_number":
            line["amount"] = rng.choice((rng.randint(4250, 29750), rng.randint(425000, 2975000) / 100))
        elif variant == "line_no_string":
            line["line_no"] = str(line["line_no"])
        else:  # an IIN that lost its quotes (and its leading zero, if any)
            line["iin"] = int(line["iin"]) if line["iin"].isdigit() else 0
    return bad, variant


def _malformed(rng: random.Random, kind: str, order: dict[str, Any], text: str) -> SyntheticRecord:
    if kind == "not_json":
        value, variant = _not_json(rng, order, text)
    elif kind == "not_utf8":
        value, variant = _not_utf8(rng, order, text)
    else:
        bad, variant = _schema_error(rng, order)
        value = _encode(bad)
    # Usually keyed like the order it garbles, as the bank adapter would; sometimes without a key.
    key = None if rng.random() < 0.1 else order["notification_id"].encode("utf-8")
    return SyntheticRecord(key, value, "malformed",
                           {"error_kind": kind, "variant": variant, "notification_id": order["notification_id"]})


def _received_at_source(received_at: datetime | Callable[[], datetime] | None) -> Callable[[], datetime]:
    if received_at is None:
        return lambda: _DEFAULT_RECEIVED_AT
    if isinstance(received_at, datetime):
        return lambda: received_at
    return received_at


_DEFAULT_RECEIVED_AT = datetime(2026, 11, 26, 10, 15, tzinfo=ALMATY)


def make_orders(registry: Sequence[dict[str, Any]], n_orders: int, lines_per_order: int | tuple[int, int],
                seed: int, scenario: Scenario | None = None,
                received_at: datetime | Callable[[], datetime] | None = None, id_prefix: str = "SYN",
                *, late: Sequence[dict[str, Any]] = (), late_ratio: float = 0.0) -> list[SyntheticRecord]:
    """`n_orders` well-formed notifications (kind "order"), plus repeats and malformed records as the
    scenario asks, in the order to publish them.

    registry: the persons the consumers' registry holds (lines copy their data).
    lines_per_order: a number, or an inclusive (min, max) range drawn per order.
    received_at: one aware datetime for every order, or a zero-argument callable called per order
      (e.g. lambda: datetime.now(ALMATY) for a benchmark near now; not deterministic then).
      The order's period is the month before it, and document and sent dates the day before,
      in Asia/Almaty.
    late, late_ratio: persons held back from `registry` (split_late) and the share of lines naming
      them: IIN_NOT_FOUND when decided at once, posted if `late` arrives within the registry-lag hold.

    A malformed record is placed right before the order it garbles, under the same key: a
    dead-lettered record must not use up the notification_id (contract, Clarifications). A repeat
    comes a few records after its original.
    """
    scenario = scenario or Scenario()
    if not 0.0 <= late_ratio <= 1.0 or late_ratio + sum(getattr(scenario, n) for n, _ in _LINE_DEFECTS) > 1.0:
        raise ValueError("late_ratio plus the scenario's line defects must be a share in [0, 1]")
    lo, hi = (lines_per_order, lines_per_order) if isinstance(lines_per_order, int) else lines_per_order
    if lo < 1 or hi < lo:
        raise ValueError(f"lines_per_order must be >= 1, got {lines_per_order!r}")
    rng = _rng(seed, "orders")
    maker = _OrderMaker(rng, scenario, _Pools(registry, late), id_prefix, late_ratio,
                        n_payers=max(1, min(n_orders, 500)))
    clock = _received_at_source(received_at)
    malformed = _Mix(_MALFORMED, lambda n: getattr(scenario, n))
    records: list[SyntheticRecord] = []
    repeats_due: dict[int, list[SyntheticRecord]] = {}
    for i in range(n_orders):
        n_lines = lo if lo == hi else rng.randint(lo, hi)
        order, expect = maker.order(i, n_lines, clock())
        record = SyntheticRecord(order["notification_id"].encode("utf-8"), _encode(order), "order", expect)
        bad_kind = malformed.draw(rng)
        if bad_kind is not None:
            records.append(_malformed(rng, bad_kind, order, record.value.decode("utf-8")))
        records.append(record)
        if rng.random() < scenario.repeat:
            again = SyntheticRecord(record.key, record.value, "repeat", {"repeats": order["notification_id"]})
            repeats_due.setdefault(i + rng.randint(1, 30), []).append(again)
        records.extend(repeats_due.pop(i, ()))
    for due in sorted(repeats_due):
        records.extend(repeats_due[due])
    return records


# --------------------------------------------------------------------------------------------------
# Summary

def summary_of(records: Iterable[SyntheticRecord], *, late_arrives: bool = False) -> dict[str, Any]:
    """What the system must produce for `records`, totalled for reconciliation.

    late_arrives=False: decide at once (late lines are IIN_NOT_FOUND refunds). True: the registry-lag
    hold is on and the late persons are published before the cut-off, so late lines post.
    Amounts are tiyn. Whole-order refunds count every line under the order's reason and refund the
    order's total_amount.
    """
    s: dict[str, Any] = {
        "records": 0, "orders": 0, "repeats": 0, "dead_letters": 0,
        "orders_by_status": Counter(), "orders_refunded_by_reason": Counter(),
        "lines": 0, "lines_posted": 0, "lines_refunded": 0, "lines_refunded_by_reason": Counter(),
        "lines_posted_by_kind": Counter(), "late_lines": 0,
        "amount_total_tiyn": 0, "amount_posted_tiyn": 0, "amount_refunded_tiyn": 0,
        "amount_refunded_by_reason_tiyn": Counter(), "amount_posted_by_kind_tiyn": Counter(),
        "dead_letters_by_kind": Counter(),
    }
    for record in records:
        s["records"] += 1
        if record.kind == "repeat":
            s["repeats"] += 1
        elif record.kind == "malformed":
            s["dead_letters"] += 1
            s["dead_letters_by_kind"][record.expect["error_kind"]] += 1
        else:
            _add_order(s, record.expect, late_arrives)
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in s.items()}


def _add_order(s: dict[str, Any], e: dict[str, Any], late_arrives: bool) -> None:
    s["orders"] += 1
    s["lines"] += e["line_count"]
    s["late_lines"] += len(e["late_lines"])
    s["amount_total_tiyn"] += e["total_tiyn"]
    reason = e["order_reason"]
    if reason is not None:
        s["orders_by_status"]["refunded"] += 1
        s["orders_refunded_by_reason"][reason] += 1
        s["lines_refunded"] += e["line_count"]
        s["lines_refunded_by_reason"][reason] += e["line_count"]
        s["amount_refunded_tiyn"] += e["total_tiyn"]
        s["amount_refunded_by_reason_tiyn"][reason] += e["total_tiyn"]
        return
    kind = codes.CONTRIBUTION_KNPS[e["knp"]]
    late = set(e["late_lines"]) if late_arrives else set()
    posted = 0
    for line_no, line_reason in e["lines"].items():
        tiyn = e["amounts"][line_no]
        if line_reason is None or line_no in late:
            posted += 1
            s["lines_posted_by_kind"][kind] += 1
            s["amount_posted_tiyn"] += tiyn
            s["amount_posted_by_kind_tiyn"][kind] += tiyn
        else:
            s["lines_refunded_by_reason"][line_reason] += 1
            s["amount_refunded_tiyn"] += tiyn
            s["amount_refunded_by_reason_tiyn"][line_reason] += tiyn
    s["lines_posted"] += posted
    s["lines_refunded"] += e["line_count"] - posted
    s["orders_by_status"][_status(e["line_count"], posted)] += 1
