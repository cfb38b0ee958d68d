"""tools.synthetic: deterministic, contract-shaped, and labelled with the right expected outcome.

The labels are checked against an oracle written here from the contract's text (check order,
normalization, deceased rule), not against rules.posting: the generator exists to test that code.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest

from models.notifications import CreditNotification
from models.registry import RegistryPerson
from rules import codes
from rules.calendar import ALMATY
from rules.dates import parse_date, parse_period
from rules.iin import is_valid_iin
from rules.money import parse_amount
from rules.names import normalize_name
from tools import synthetic
from tools.synthetic import (Scenario, make_orders, make_person, make_registry, registry_changes, split_late,
                             summary_of)

RECEIVED = datetime(2026, 11, 26, 10, 15, tzinfo=ALMATY)

# Every kind of defect at a share big enough to count, and every shape variation switched up.
BUSY = Scenario(
    misrouted_knp=0.03, wrong_currency=0.03, duplicate_line_no=0.03, total_mismatch=0.03,
    invalid_iin=0.03, period_after_receipt=0.03, zero_amount=0.03, unknown_iin=0.03, name_mismatch=0.03,
    birth_date_mismatch=0.03, deceased=0.03,
    repeat=0.03, not_json=0.02, not_utf8=0.02, schema=0.04,
    harmless_variation=0.5, short_amount=0.2, arrears=0.2, order_without_period=0.2, received_at_utc=0.2,
)
N_ORDERS, N_LINES, LATE_RATIO = 4000, 5, 0.03


@pytest.fixture(scope="module")
def registry():
    return make_registry(20_000, seed=5, deceased_ratio=0.02)


@pytest.fixture(scope="module")
def split(registry):
    return split_late(registry, 0.05, seed=5)


@pytest.fixture(scope="module")
def records(split):
    early, late = split
    return make_orders(early, N_ORDERS, N_LINES, 9, BUSY, RECEIVED, "T", late=late, late_ratio=LATE_RATIO)


def orders_of(records):
    return [r for r in records if r.kind == "order"]


# -- persons ----------------------------------------------------------------------------------------

def test_registry_is_deterministic_per_seed():
    assert make_registry(500, seed=1) == make_registry(500, seed=1)
    assert make_registry(500, seed=1) != make_registry(500, seed=2)


def test_iins_valid_unique_and_encode_birth_date_and_sex(registry):
    iins = [p["iin"] for p in registry]
    assert len(set(iins)) == len(iins)
    for p in registry:
        iin, born = p["iin"], date.fromisoformat(p["birth_date"])
        assert is_valid_iin(iin), p
        assert iin[:6] == born.strftime("%y%m%d")
        century_digit = int(iin[6])
        assert century_digit in ((3, 4) if born.year < 2000 else (5, 6))
        assert (century_digit % 2 == 1) == (p["sex"] == "M")


def test_make_person_respects_sex_and_years():
    rng = random.Random(3)
    for _ in range(300):
        p = make_person(rng, sex="F", birth_year_range=(2001, 2003))
        assert p["sex"] == "F" and p["iin"][6] == "6" and 2001 <= int(p["birth_date"][:4]) <= 2003
        assert p["death_date"] is None
    with pytest.raises(ValueError):
        make_person(rng, sex="X")


def test_registry_records_have_the_contract_shape(registry):
    for p in registry:
        RegistryPerson.model_validate_json(json.dumps(p))  # strict: raises on any wrong type
        assert p["updated_at"].endswith("+05:00")
    share = Counter(p["citizenship"] == "KZ" for p in registry)
    assert share[True] > 0.95 * len(registry)
    assert 0.2 < sum("address" in p for p in registry) / len(registry) < 0.4
    dead = [p for p in registry if p["death_date"]]
    assert 0.01 < len(dead) / len(registry) < 0.03
    assert all(p["death_date"] > p["birth_date"] for p in dead)


def _female_form_ok(surname):
    return surname.endswith(("ова", "ева", "ёва", "ина", "ына", "ская", "цкая", "қызы")) or surname in INVARIANT


INVARIANT = {"Сейткали", "Нұрғали", "Ким", "Пак", "Цой", "Ли", "Петренко", "Шевченко", "Бондаренко", "Коваленко"}


def test_names_are_gendered(registry):
    male_names = set(synthetic._KZ_MALE + synthetic._RU_MALE)
    female_names = set(synthetic._KZ_FEMALE + synthetic._RU_FEMALE)
    for p in registry:
        surname, patronymic = p["surname"], p["patronymic"]
        if p["sex"] == "M":
            assert p["name"] in male_names
            assert not surname.endswith(("ова", "ева", "ина", "ская", "қызы")), surname
            assert patronymic is None or patronymic.endswith(("вич", "ұлы")), patronymic
        else:
            assert p["name"] in female_names
            assert _female_form_ok(surname), surname
            assert patronymic is None or patronymic.endswith(("вна", "қызы")), patronymic
    assert {p["patronymic"] is None for p in registry} == {True, False}


def test_feminine_surnames():
    assert synthetic._feminine("Ахметов") == "Ахметова"
    assert synthetic._feminine("Королёв") == "Королёва"
    assert synthetic._feminine("Мусин") == "Мусина"
    assert synthetic._feminine("Новицкий") == "Новицкая"
    assert synthetic._feminine("Ким") == "Ким"
    assert synthetic._feminine("Сейткали") == "Сейткали"


def test_name_lists_are_big_and_distinct_after_normalization():
    surnames = synthetic._KZ_SURNAME_FORMS + synthetic._RU_SURNAME_FORMS
    assert len(surnames) >= 40
    assert len(synthetic._KZ_MALE + synthetic._RU_MALE) >= 40
    assert len(synthetic._KZ_FEMALE + synthetic._RU_FEMALE) >= 40
    for group in ([m for m, _ in surnames], [f for _, f in surnames], synthetic._KZ_MALE + synthetic._RU_MALE,
                  synthetic._KZ_FEMALE + synthetic._RU_FEMALE):
        normalized = [normalize_name(x) for x in group]
        assert len(set(normalized)) == len(normalized)  # else a planted mismatch could match


def test_split_late_keeps_the_deceased_early(registry, split):
    early, late = split
    assert len(early) + len(late) == len(registry)
    assert {p["iin"] for p in early}.isdisjoint(p["iin"] for p in late)
    assert all(p["death_date"] is None for p in late)
    assert 0.03 < len(late) / len(registry) < 0.07


# -- orders: shape ----------------------------------------------------------------------------------

def test_orders_are_deterministic_per_seed(split):
    early, late = split
    args = (early, 200, (1, 8))
    a = make_orders(*args, 4, BUSY, RECEIVED, "D", late=late, late_ratio=0.05)
    b = make_orders(*args, 4, BUSY, RECEIVED, "D", late=late, late_ratio=0.05)
    assert [(r.key, r.value, r.kind) for r in a] == [(r.key, r.value, r.kind) for r in b]
    assert [r.expect for r in a] == [r.expect for r in b]
    c = make_orders(*args, 5, BUSY, RECEIVED, "D", late=late, late_ratio=0.05)
    assert [r.value for r in a] != [r.value for r in c]


def test_well_formed_orders_validate_and_add_up(records):
    orders = orders_of(records)
    assert len(orders) == N_ORDERS
    ids = [r.expect["notification_id"] for r in orders]
    assert ids == [f"T-{i:06d}" for i in range(N_ORDERS)]
    for r in orders:
        n = CreditNotification.model_validate_json(r.value)
        assert r.key == n.notification_id.encode()
        total = parse_amount(n.total_amount)
        assert total == r.expect["total_tiyn"] > 0
        amounts = [parse_amount(line.amount) for line in n.lines]
        if r.expect["order_reason"] != codes.TOTAL_MISMATCH:
            assert sum(amounts) == total
        else:
            assert not n.lines or None in amounts or sum(amounts) != total


def test_order_fields(records):
    for r in orders_of(records):
        o = json.loads(r.value)
        received = datetime.fromisoformat(o["received_at"].replace("Z", "+00:00"))
        assert received == RECEIVED
        assert o["document_date"] == o["sent_date"] == "2026-11-25"
        assert o.get("period", "2026-10") == "2026-10"
        assert o["bank_bic"] in synthetic.BANK_BICS
        assert o["recipient_name"] == synthetic.RECIPIENT_NAME
        payer = o["payer"]
        assert is_valid_iin(payer["bin_iin"]) and payer["bin_iin"][4] in "456" and payer["bin_iin"][5] in "0123"
        iban = payer["iban"]
        assert len(iban) == 20 and iban.startswith("KZ")
        assert int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1  # ISO 13616
        reason = r.expect["order_reason"]
        if reason != codes.KNP_NOT_ACCEPTED:
            assert o["knp"] in ("012", "017")
        if reason != codes.CURRENCY_NOT_ACCEPTED:
            assert o["currency"] == "KZT"


def test_contribution_amounts_in_the_2026_range(records):
    seen_tiyn = False
    for r in orders_of(records):
        o = json.loads(r.value)
        if o["knp"] != "012" or r.expect["order_reason"]:
            continue
        for line in o["lines"]:
            tiyn = parse_amount(line["amount"])
            if r.expect["lines"][line["line_no"]] != codes.AMOUNT_INVALID:
                assert 4250_00 <= tiyn <= 29750_00
                seen_tiyn |= tiyn % 100 != 0
    assert seen_tiyn


def test_received_at_callable_and_aware_only(split):
    early, _ = split
    stamps = iter(RECEIVED + timedelta(days=k) for k in range(10))
    got = make_orders(early, 10, 2, 1, Scenario.clean(), lambda: next(stamps), "C")
    assert [json.loads(r.value)["received_at"][:10] for r in got] == [
        (RECEIVED + timedelta(days=k)).date().isoformat() for k in range(10)]
    with pytest.raises(ValueError):
        make_orders(early, 1, 2, 1, Scenario.clean(), datetime(2026, 11, 26, 10, 15), "C")


def test_receipt_month_is_almaty_month():
    # 2026-11-30 20:30Z is 2026-12-01 01:30 in Almaty: the month of receipt is December.
    registry = make_registry(100, seed=1, deceased_ratio=0)
    got = make_orders(registry, 3, 1, 1, Scenario.clean(), datetime(2026, 11, 30, 20, 30, tzinfo=timezone.utc))
    for r in got:
        o = json.loads(r.value)
        assert o["period"] == "2026-11" and o["document_date"] == "2026-11-30"


def test_clean_scenario_posts_everything(split):
    early, _ = split
    got = make_orders(early, 300, (1, 20), 2, Scenario.clean(), RECEIVED, "C")
    s = summary_of(got)
    assert s["records"] == s["orders"] == 300
    assert s["lines_refunded"] == 0 and s["amount_posted_tiyn"] == s["amount_total_tiyn"]


# -- orders: defects and their labels -----------------------------------------------------------------

def test_defect_shares_are_as_requested(records):
    orders = orders_of(records)
    order_reasons = Counter(r.expect["order_reason"] for r in orders)
    for reason in codes.ORDER_REASONS:
        assert 0.6 * 0.03 * N_ORDERS < order_reasons[reason] < 1.4 * 0.03 * N_ORDERS, (reason, order_reasons)
    clean_lines = sum(r.expect["line_count"] for r in orders if r.expect["order_reason"] is None)
    line_reasons = Counter(reason for r in orders if r.expect["order_reason"] is None
                           for reason in r.expect["lines"].values())
    late = sum(len(r.expect["late_lines"]) for r in orders)
    for reason in codes.LINE_REASONS:
        expected = 0.03 * clean_lines + (late if reason == codes.IIN_NOT_FOUND else 0)
        assert 0.8 * expected < line_reasons[reason] < 1.2 * expected, (reason, line_reasons)
    assert 0.8 * LATE_RATIO * clean_lines < late < 1.2 * LATE_RATIO * clean_lines
    kinds = Counter(r.kind for r in records)
    assert 0.7 * 0.03 * N_ORDERS < kinds["repeat"] < 1.3 * 0.03 * N_ORDERS
    bad = Counter(r.expect["error_kind"] for r in records if r.kind == "malformed")
    for kind, share in (("not_json", 0.02), ("not_utf8", 0.02), ("schema", 0.04)):
        assert 0.6 * share * N_ORDERS < bad[kind] < 1.4 * share * N_ORDERS, bad


def test_expected_reasons_are_contract_codes(records):
    for r in orders_of(records):
        e = r.expect
        assert e["order_reason"] in (None, *codes.ORDER_REASONS)
        allowed = {e["order_reason"]} if e["order_reason"] else {None, *codes.LINE_REASONS}
        assert set(e["lines"].values()) <= allowed
        assert e["posted_tiyn"] + e["refunded_tiyn"] == e["total_tiyn"]
        assert e["status"] in ("posted", "partially_refunded", "refunded")


def _line_period(o, line):
    return line.get("period") if line.get("period") is not None else o.get("period")


def oracle(o, persons):
    """The contract's decision, written from its text for this test (hold off)."""
    if o["knp"] not in ("012", "017"):
        return codes.KNP_NOT_ACCEPTED, {}
    if o["currency"] != "KZT":
        return codes.CURRENCY_NOT_ACCEPTED, {}
    numbers = [line["line_no"] for line in o["lines"]]
    if len(set(numbers)) != len(numbers):
        return codes.DUPLICATE_LINE_NO, {}
    amounts = [parse_amount(line["amount"]) for line in o["lines"]]
    if not o["lines"] or None in amounts or sum(amounts) != parse_amount(o["total_amount"]):
        return codes.TOTAL_MISMATCH, {}
    received = datetime.fromisoformat(o["received_at"].replace("Z", "+00:00")).astimezone(ALMATY)
    out = {}
    for line, tiyn in zip(o["lines"], amounts):
        period = parse_period(_line_period(o, line))
        person = persons.get(line["iin"])
        if not is_valid_iin(line["iin"]):
            reason = codes.INVALID_IIN
        elif period is None or period > (received.year, received.month):
            reason = codes.PERIOD_INVALID
        elif tiyn == 0:
            reason = codes.AMOUNT_INVALID
        elif person is None:
            reason = codes.IIN_NOT_FOUND
        elif (normalize_name(line["surname"]) != normalize_name(person["surname"])
              or normalize_name(line["name"]) != normalize_name(person["name"])
              or (line.get("patronymic") and person["patronymic"]
                  and normalize_name(line["patronymic"]) != normalize_name(person["patronymic"]))):
            reason = codes.NAME_MISMATCH
        elif parse_date(line["birth_date"]) is None or line["birth_date"] != person["birth_date"]:
            reason = codes.BIRTH_DATE_MISMATCH
        elif person["death_date"] and period > (int(person["death_date"][:4]), int(person["death_date"][5:7])):
            reason = codes.DECEASED
        else:
            reason = None
        out[line["line_no"]] = reason
    return None, out


def test_labels_agree_with_the_contract(split, records):
    early, late = split
    persons = {p["iin"]: p for p in early}
    for r in orders_of(records):
        o = json.loads(r.value)
        order_reason, lines = oracle(o, persons)
        assert order_reason == r.expect["order_reason"], o["notification_id"]
        if order_reason is None:
            assert lines == r.expect["lines"], o["notification_id"]
    # Once the late persons are there, their lines post (registry-lag hold on).
    persons.update((p["iin"], p) for p in late)
    for r in orders_of(records):
        if r.expect["late_lines"]:
            _, lines = oracle(json.loads(r.value), persons)
            assert all(lines[n] is None for n in r.expect["late_lines"])


def test_harmless_variations_occur_and_still_match(split, records):
    early, _ = split
    persons = {p["iin"]: p for p in early}
    seen = Counter()
    for r in orders_of(records):
        if r.expect["order_reason"]:
            continue
        for line in json.loads(r.value)["lines"]:
            if r.expect["lines"][line["line_no"]] is not None:
                continue
            p = persons[line["iin"]]
            seen["upper"] += line["surname"] != p["surname"] and line["surname"] == p["surname"].upper()
            seen["spaces"] += line["surname"] != line["surname"].strip() or line["name"] != line["name"].strip()
            seen["yo"] += "ё" in p["surname"] + p["name"] and "ё" not in line["surname"] + line["name"]
            seen["no_patronymic"] += p["patronymic"] is not None and line.get("patronymic") is None
            seen["short_amount"] += "." not in line["amount"] or len(line["amount"].split(".")[1]) == 1
    assert all(seen[k] > 5 for k in ("upper", "spaces", "yo", "no_patronymic", "short_amount")), seen


def test_planted_name_mismatches_include_transliterations(records):
    variants = Counter()
    for r in orders_of(records):
        o = json.loads(r.value)
        for line in o["lines"]:
            if r.expect["lines"].get(line["line_no"]) == codes.NAME_MISMATCH:
                variants["russian_spelling"] += line["name"] in synthetic._RU_SPELLINGS.values()
                variants["all"] += 1
    assert variants["russian_spelling"] > 0 and variants["all"] > 100


def test_deceased_needs_a_pool():
    living_only = make_registry(200, seed=1, deceased_ratio=0)
    with pytest.raises(ValueError, match="DECEASED"):
        make_orders(living_only, 50, 10, 1, Scenario(deceased=0.5), RECEIVED)


def test_late_needs_the_late_persons_and_not_in_registry(registry, split):
    early, late = split
    with pytest.raises(ValueError):
        make_orders(early, 5, 5, 1, Scenario.clean(), RECEIVED, late_ratio=0.1)
    with pytest.raises(ValueError):
        make_orders(registry, 5, 5, 1, Scenario.clean(), RECEIVED, late=late, late_ratio=0.1)
    got = make_orders(early, 200, 5, 1, Scenario.clean(), RECEIVED, late=late, late_ratio=0.2)
    late_iins = {p["iin"] for p in late}
    for r in got:
        o = json.loads(r.value)
        for line in o["lines"]:
            assert (line["line_no"] in r.expect["late_lines"]) == (line["iin"] in late_iins)


def test_single_line_orders_stay_unambiguous(split):
    early, _ = split
    got = make_orders(early, 2000, 1, 3, Scenario(duplicate_line_no=0.5, zero_amount=0.5), RECEIVED)
    for r in orders_of(got):
        assert r.expect["order_reason"] != codes.DUPLICATE_LINE_NO
        assert r.expect["lines"].get(1) != codes.AMOUNT_INVALID  # a lone zero line would be total 0.00
        CreditNotification.model_validate_json(r.value)


def test_scenario_shares_are_validated():
    with pytest.raises(ValueError):
        Scenario(invalid_iin=1.5)
    with pytest.raises(ValueError):
        Scenario(invalid_iin=0.6, name_mismatch=0.6)
    with pytest.raises(ValueError):
        make_orders(make_registry(10, 1), 1, 1, 1, Scenario(invalid_iin=0.9), RECEIVED, late_ratio=0.2)


# -- repeats and malformed records ------------------------------------------------------------------

def test_repeats_are_identical_and_come_after_their_original(records):
    first_seen = {}
    for pos, r in enumerate(records):
        if r.kind == "order":
            first_seen[r.expect["notification_id"]] = (pos, r)
        elif r.kind == "repeat":
            pos0, original = first_seen[r.expect["repeats"]]
            assert pos0 < pos and (r.key, r.value) == (original.key, original.value)


def test_malformed_records_fail_as_their_kind_says(records):
    malformed = [r for r in records if r.kind == "malformed"]
    assert len({r.expect["variant"].split(":")[0] for r in malformed}) >= 10
    for r in malformed:
        kind = r.expect["error_kind"]
        if kind == "not_utf8":
            with pytest.raises(UnicodeDecodeError):
                r.value.decode("utf-8")
            continue
        text = r.value.decode("utf-8")
        if kind == "not_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
            continue
        assert kind == "schema"
        assert isinstance(json.loads(text), dict)
        with pytest.raises(ValueError):  # pydantic.ValidationError is a ValueError
            CreditNotification.model_validate_json(r.value)


def test_malformed_record_precedes_the_order_it_garbles(records):
    for pos, r in enumerate(records):
        if r.kind == "malformed":
            following = records[pos + 1]
            assert following.kind == "order" and following.expect["notification_id"] == r.expect["notification_id"]
            assert r.key in (None, following.key)


# -- summary ------------------------------------------------------------------------------------------

def test_summary_reconciles(records):
    for late_arrives in (False, True):
        s = summary_of(records, late_arrives=late_arrives)
        assert s["records"] == len(records)
        assert s["orders"] == N_ORDERS
        assert s["repeats"] == sum(r.kind == "repeat" for r in records)
        assert s["dead_letters"] == sum(s["dead_letters_by_kind"].values()) == sum(r.kind == "malformed" for r in records)
        assert s["amount_posted_tiyn"] + s["amount_refunded_tiyn"] == s["amount_total_tiyn"]
        assert sum(s["amount_refunded_by_reason_tiyn"].values()) == s["amount_refunded_tiyn"]
        assert sum(s["amount_posted_by_kind_tiyn"].values()) == s["amount_posted_tiyn"]
        assert s["lines_posted"] + s["lines_refunded"] == s["lines"]
        assert sum(s["lines_refunded_by_reason"].values()) == s["lines_refunded"]
        assert sum(s["orders_by_status"].values()) == N_ORDERS
    at_once, held = summary_of(records), summary_of(records, late_arrives=True)
    assert held["lines_posted"] - at_once["lines_posted"] == at_once["late_lines"] > 0
    assert set(at_once["lines_posted_by_kind"]) == {"contribution", "penalty"}


def test_summary_matches_the_per_order_expectations(records):
    orders = orders_of(records)
    s = summary_of(records)
    assert s["amount_posted_tiyn"] == sum(r.expect["posted_tiyn"] for r in orders)
    assert Counter(r.expect["status"] for r in orders) == Counter(s["orders_by_status"])


def test_registry_changes_rename_kill_or_delete_living_persons(registry):
    at = datetime(2026, 11, 26, 12, 0, tzinfo=ALMATY)
    changes = registry_changes(registry, 200, seed=5, updated_at=at)
    assert changes == registry_changes(registry, 200, seed=5, updated_at=at), "deterministic per seed"
    by_iin = {p["iin"]: p for p in registry}
    assert len({iin for iin, _ in changes}) == 200
    kinds = Counter()
    for iin, new in changes:
        old = by_iin[iin]
        assert old["death_date"] is None, "only living persons change"
        if new is None:
            kinds["deleted"] += 1
            continue
        assert new["iin"] == iin and new["updated_at"] == "2026-11-26T12:00:00+05:00"
        changed = {k for k in new if new[k] != old.get(k)} - {"updated_at"}
        if changed == {"surname"}:
            assert new["surname"].casefold() != old["surname"].casefold()
            kinds["renamed"] += 1
        else:
            assert changed == {"death_date"} and new["death_date"] == "2026-10-01"
            kinds["deceased"] += 1
    assert set(kinds) == {"renamed", "deceased", "deleted"} and kinds["renamed"] > kinds["deleted"]
