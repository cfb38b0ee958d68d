"""Hand-written notifications that exercise every reason code, with the outcome the contract
expects for each line. Shared by the rule tests (pure) and the end-to-end test (real broker)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

EXAMPLES = Path(__file__).parent / "data"
RECEIVED_AT = "2026-11-26T10:15:00+05:00"  # a Thursday; month of receipt 2026-11

A = {"iin": "870314312348", "surname": "Ахметов", "name": "Ерлан", "patronymic": "Серикович", "birth_date": "1987-03-14"}
B = {"iin": "921102423450", "surname": "Сейткали", "name": "Айгүл", "patronymic": "Қайратқызы", "birth_date": "1992-11-02"}
C = {"iin": "010630534571", "surname": "Фёдоров", "name": "Дмитрий", "patronymic": "Петрович", "birth_date": "2001-06-30"}
D = {"iin": "040109645673", "surname": "Байжанова", "name": "Айжан", "patronymic": "Нұрланқызы", "birth_date": "2004-01-09"}
# Died in August 2026: October's contribution is DECEASED, August's is still posted.
E = {"iin": "581225356784", "surname": "Оспанов", "name": "Бауыржан", "patronymic": "Қасымұлы", "birth_date": "1958-12-25"}
F_UNKNOWN = "900505300407"  # valid check digit, never in the registry


def registry_persons() -> list[dict]:
    out = []
    for person, sex, death in ((A, "M", None), (B, "F", None), (C, "M", None), (D, "F", None), (E, "M", "2026-08-15")):
        out.append({**person, "sex": sex, "citizenship": "KZ", "death_date": death,
                    "updated_at": "2026-09-01T09:00:00+05:00"})
    return out


def _line(no: int, person: dict, amount: str = "4250.00", **changes) -> dict:
    line = {"line_no": no, "iin": person["iin"], "surname": person["surname"], "name": person["name"],
            "patronymic": person["patronymic"], "birth_date": person["birth_date"], "amount": amount}
    line.update(changes)
    return line


def _order(nid: str, lines: list[dict], total: str | None = None, **changes) -> dict:
    from decimal import Decimal

    if total is None:
        total = str(sum(Decimal(ln["amount"]) for ln in lines))
    order = {
        "notification_id": nid, "bank_bic": "HSBKKZKX", "document_number": nid.split("-")[-1],
        "document_date": "2026-11-25", "sent_date": "2026-11-25", "received_at": RECEIVED_AT, "knp": "012",
        "payer": {"name": "ТОО «Дала Құрылыс»", "bin_iin": "180440000019", "iban": "KZ86125KZT5004100100"},
        "recipient_name": "НАО «Государственная корпорация «Правительство для граждан»",
        "total_amount": total, "currency": "KZT", "period": "2026-10", "lines": lines,
    }
    order.update(changes)
    return order


def example_notification() -> dict:
    return json.loads((EXAMPLES / "notification.json").read_text(encoding="utf-8"))


def cases() -> list[tuple[dict, str | None, dict[int, str | None]]]:
    """(notification, expected order reason, {line_no: expected line reason or None for posted})."""
    every_line_reason = _order("T-LINES-2", [
        _line(1, A, "29750.00"),
        _line(2, A, iin="87031431234"),
        _line(3, C, period="2026-13"),
        _line(4, D, period="2026-12"),
        _line(5, D, "0.00"),
        _line(6, A, iin=F_UNKNOWN),
        _line(7, B, surname="Сейткалиева"),
        _line(8, C, birth_date="2001-06-29"),
        _line(9, C, birth_date="2001-02-30"),
        _line(10, E),
        _line(11, E, period="2026-08"),
        _line(12, D, patronymic="Серикқызы"),
        _line(13, A, "4250.5", surname="  ахметов  ", name="ЕРЛАН", patronymic=None),
        _line(14, B, name="Айгуль"),
        _line(15, C, surname="Федоров"),
    ])
    no_period = _order("T-NOPERIOD-3", [_line(1, A), _line(2, C, period="2026-09")], period=None)
    penalty = _order("T-PENALTY-4", [_line(1, A, "1234.56"), _line(2, B, iin=F_UNKNOWN, amount="100")], knp="017")
    out = [
        (example_notification(), None, {1: None, 2: "INVALID_IIN", 3: None, 4: "NAME_MISMATCH"}),
        (every_line_reason, None, {
            1: None, 2: "INVALID_IIN", 3: "PERIOD_INVALID", 4: "PERIOD_INVALID", 5: "AMOUNT_INVALID",
            6: "IIN_NOT_FOUND", 7: "NAME_MISMATCH", 8: "BIRTH_DATE_MISMATCH", 9: "BIRTH_DATE_MISMATCH",
            10: "DECEASED", 11: None, 12: "NAME_MISMATCH", 13: None, 14: "NAME_MISMATCH", 15: None,
        }),
        (no_period, None, {1: "PERIOD_INVALID", 2: None}),
        (penalty, None, {1: None, 2: "IIN_NOT_FOUND"}),
        (_order("T-ALLPOSTED-5", [_line(1, A), _line(2, B), _line(3, C, "4250")]), None, {1: None, 2: None, 3: None}),
    ]
    whole = [
        ("T-KNP-6", dict(knp="010"), "KNP_NOT_ACCEPTED"),
        ("T-CUR-7", dict(currency="USD"), "CURRENCY_NOT_ACCEPTED"),
        ("T-SUM-9", dict(total_amount="9999.99"), "TOTAL_MISMATCH"),
    ]
    for nid, changes, reason in whole:
        order = _order(nid, [_line(1, A), _line(2, B)])
        order.update(changes)
        out.append((order, reason, {1: reason, 2: reason}))
    dup = _order("T-DUP-8", [_line(1, A), _line(1, B)], total="1.00")  # duplicate wins over the bad total
    out.append((dup, "DUPLICATE_LINE_NO", {1: "DUPLICATE_LINE_NO"}))
    neg = _order("T-NEG-10", [_line(1, A), _line(2, B, "-100.00")], total="4150.00")
    out.append((neg, "TOTAL_MISMATCH", {1: "TOTAL_MISMATCH", 2: "TOTAL_MISMATCH"}))
    frac = _order("T-FRAC-11", [_line(1, A, "12.345")], total="12.35")
    out.append((frac, "TOTAL_MISMATCH", {1: "TOTAL_MISMATCH"}))
    out.append((_order("T-EMPTY-12", [], total="500.00"), "TOTAL_MISMATCH", {}))
    return out


def malformed() -> list[tuple[bytes, bytes, str, str]]:
    """(key, value, expected error_kind, a fragment the error must name)."""
    good = _order("T-BAD", [_line(1, A)])

    def variant(**changes) -> bytes:
        order = copy.deepcopy(good)
        for k, v in changes.items():
            if v is None:
                order.pop(k)
            else:
                order[k] = v
        return json.dumps(order, ensure_ascii=False).encode()

    return [
        (b"T-BAD-1", b"{not json", "not_json", "JSON"),
        (b"T-BAD-2", b"\xff\xfe\x00{}", "not_utf8", "UTF-8"),
        (b"T-BAD-3", variant(lines=None), "schema", "lines"),
        (b"T-BAD-4", variant(total_amount=59000), "schema", "total_amount"),
        (b"T-BAD-5", variant(received_at="2026-11-26T10:15:00"), "schema", "received_at"),
        (b"T-BAD-6", variant(document_date="2026-02-30"), "schema", "document_date"),
        (b"T-BAD-7", variant(total_amount="0.00"), "schema", "total_amount"),
        (b"T-BAD-8", variant(total_amount="1.234"), "schema", "total_amount"),
        (b"T-BAD-9", variant(lines={"1": {}}), "schema", "lines"),
        (b"T-BAD-10", b"[1, 2, 3]", "schema", "object"),
    ]
