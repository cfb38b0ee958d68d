"""What an analyst opens: a month's report (a `reports.monthly` record) as CSV, as an XLSX workbook and
as a PNG chart.

- CSV: one long table, `section,item,figure,label_en,label_kk,label_ru,value`; amounts as exact
  two-decimal strings, so nothing is lost to a spreadsheet's floats on import.
- XLSX (openpyxl): one sheet per section, English, Kazakh and Russian labels side by side, figures as
  numbers (amounts with the tenge format `#,##0.00`, counts `#,##0`).
- PNG (matplotlib): contributions by day of receipt, refunds by reason and, when the version holds
  them, social payments by type (gross paid, recipients active and overpayments outstanding at the
  month's end).

`python -m tools.report_files --sample DIR [--png docs/report-sample.png]` writes all three for a
synthetic month.
"""
from __future__ import annotations

import argparse
import csv
import random
import zlib
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from rules.calendar import ALMATY, default_calendar
from rules.codes import LINE_REASONS, PAYMENT_TYPES
from rules.iin import check_digit
from rules.money import format_tiyn
from rules.report import PARTS, Partial, build_report, final_due, merge, merge_covers
from rules.report.figures import AMOUNT_LEAVES

__all__ = ["LABELS", "rows", "sample_report", "write_chart", "write_csv", "write_files", "write_xlsx"]

TENGE_FORMAT = "#,##0.00"
COUNT_FORMAT = "#,##0"

# figure -> (English, Kazakh, Russian)
LABELS: dict[str, tuple[str, str, str]] = {
    "month": ("Month", "Ай", "Месяц"),
    "version": ("Version", "Нұсқа", "Версия"),
    "revision": ("Revision", "Түзету нөмірі", "Номер уточнения"),
    "generated_at": ("Generated at", "Жасалған уақыты", "Сформирован"),
    "parts": ("Sections held", "Қамтылған бөлімдер", "Включённые разделы"),
    "participants": ("Participants (distinct IINs, KNP 012)", "Қатысушылар (бірегей ЖСН, ТМК 012)",
                     "Участники (уникальные ИИН, КНП 012)"),
    "payers": ("Payers (distinct BIN/IIN)", "Төлеушілер (бірегей БСН/ЖСН)", "Плательщики (уникальные БИН/ИИН)"),
    "lines_posted": ("Lines posted", "Есепке алынған жолдар", "Учтённые строки"),
    "amount_contributions": ("Social contributions, KNP 012", "Әлеуметтік аударымдар, ТМК 012",
                             "Социальные отчисления, КНП 012"),
    "amount_penalties": ("Penalties, KNP 017", "Өсімпұл, ТМК 017", "Пеня, КНП 017"),
    "reversals.lines": ("Reversed lines", "Сторноланған жолдар", "Сторнированные строки"),
    "reversals.amount": ("Reversed amount", "Сторноланған сома", "Сторнированная сумма"),
    "refunds.orders": ("Refund orders to payers", "Төлеушілерге қайтару тапсырмалары",
                       "Поручения на возврат плательщикам"),
    "refunds.lines": ("Refunded lines", "Қайтарылған жолдар", "Возвращённые строки"),
    "refunds.amount": ("Refunded amount", "Қайтарылған сома", "Возвращённая сумма"),
    "deceased_alerts": ("Alerts: contributions for deceased persons", "Қайтыс болған адамдарға аударымдар туралы хабарламалар",
                        "Оповещения об отчислениях за умерших"),
    "decided_after_deadline": ("Orders decided after the deadline", "Мерзімнен кейін шешілген тапсырмалар",
                               "Поручения, обработанные после срока"),
    "period": ("Period paid for", "Төленген кезең", "Период оплаты"),
    "day": ("Day of receipt", "Түскен күні", "Дата поступления"),
    "lines": ("Lines", "Жолдар", "Строки"),
    "amount": ("Amount, KZT", "Сома, теңге", "Сумма, тенге"),
    "reason": ("Reason", "Себеп", "Причина"),
    "recipients_active_at_month_end": ("Active recipients at month end", "Ай соңындағы белсенді алушылар",
                                       "Активные получатели на конец месяца"),
    "assigned": ("Assigned", "Тағайындалды", "Назначено"),
    "recalculated": ("Recalculated", "Қайта есептелді", "Перерасчитано"),
    "suspended": ("Suspended", "Тоқтатыла тұрды", "Приостановлено"),
    "resumed": ("Resumed", "Қайта басталды", "Возобновлено"),
    "terminated": ("Terminated", "Тоқтатылды", "Прекращено"),
    "refused": ("Refused", "Бас тартылды", "Отказано"),
    "payments.count": ("Payments", "Төлемдер саны", "Количество выплат"),
    "payments.gross": ("Payments, gross", "Төлемдер, есептелген", "Выплаты, начислено"),
    "payments.withheld": ("Pension contributions withheld", "Ұсталған зейнетақы жарналары",
                          "Удержанные пенсионные взносы"),
    "payments.net": ("Payments, net", "Төлемдер, аударылған", "Выплаты, перечислено"),
    "returns.count": ("Returns", "Қайтарымдар саны", "Количество возвратов"),
    "returns.amount": ("Returned amount", "Қайтарылған сома", "Сумма возвратов"),
    "overpaid.count": ("Overpaid transfers", "Артық төлемдер саны", "Количество переплат"),
    "overpaid.amount": ("Overpaid amount", "Артық төленген сома", "Сумма переплат"),
    "overpaid_outstanding_at_month_end": ("Overpayments outstanding at month end", "Ай соңындағы өтелмеген артық төлемдер",
                                          "Непогашенные переплаты на конец месяца"),
    "change": ("Change since the previous version", "Алдыңғы нұсқадан өзгеріс", "Изменение с предыдущей версии"),
    "topic": ("Topic", "Топик", "Топик"),
    "partition": ("Partition", "Бөлім", "Партиция"),
    "next_offset": ("Next offset counted", "Келесі есептелетін ығысу", "Следующее учитываемое смещение"),
}
REASON_LABELS: dict[str, tuple[str, str, str]] = {
    "KNP_NOT_ACCEPTED": ("KNP not accepted", "ТМК қабылданбайды", "КНП не принимается"),
    "CURRENCY_NOT_ACCEPTED": ("Currency not accepted", "Валюта қабылданбайды", "Валюта не принимается"),
    "DUPLICATE_LINE_NO": ("Duplicate line number", "Жол нөмірі қайталанады", "Повтор номера строки"),
    "TOTAL_MISMATCH": ("Total does not match the lines", "Жалпы сома жолдарға сәйкес емес",
                       "Общая сумма не совпадает со строками"),
    "INVALID_IIN": ("Invalid IIN", "ЖСН қате", "Неверный ИИН"),
    "PERIOD_INVALID": ("Invalid period", "Кезең қате", "Неверный период"),
    "AMOUNT_INVALID": ("Invalid amount", "Сома қате", "Неверная сумма"),
    "IIN_NOT_FOUND": ("IIN not in the registry", "ЖСН тіркелімде жоқ", "ИИН нет в регистре"),
    "NAME_MISMATCH": ("Name does not match", "Аты-жөні сәйкес емес", "ФИО не совпадает"),
    "BIRTH_DATE_MISMATCH": ("Birth date does not match", "Туған күні сәйкес емес", "Дата рождения не совпадает"),
    "DECEASED": ("Person deceased", "Адам қайтыс болған", "Лицо умерло"),
}
TYPE_LABELS: dict[str, tuple[str, str, str]] = {
    "loss_of_working_capacity": ("Loss of working capacity", "Еңбекке қабілеттіліктен айырылу",
                                 "Утрата трудоспособности"),
    "loss_of_breadwinner": ("Loss of breadwinner", "Асыраушысынан айырылу", "Потеря кормильца"),
    "loss_of_job": ("Loss of job", "Жұмыссыз қалу", "Потеря работы"),
    "pregnancy_and_childbirth": ("Pregnancy and childbirth", "Жүктілік және босану", "Беременность и роды"),
    "adoption": ("Adoption of a newborn", "Жаңа туған баланы асырап алу", "Усыновление новорождённого"),
    "child_care": ("Child care", "Бала күтімі", "Уход за ребёнком"),
}
VERSION_LABELS = {"preliminary": ("preliminary", "алдын ала", "предварительный"),
                  "final": ("final", "қорытынды", "окончательный"),
                  "revised": ("revised", "түзетілген", "уточнённый")}
SECTION_TITLES = {
    "Summary": ("Summary", "Жиынтық", "Сводка"),
    "Contributions": ("Contributions", "Аударымдар", "Отчисления"),
    "By period": ("Posted lines by period paid for", "Төленген кезең бойынша", "По оплачиваемым периодам"),
    "By day": ("Posted lines by day of receipt", "Түскен күні бойынша", "По дням поступления"),
    "Refunds by reason": ("Refunded lines by reason", "Қайтарылған жолдар себеп бойынша",
                          "Возвращённые строки по причинам"),
    "Social payments": ("Social payments", "Әлеуметтік төлемдер", "Социальные выплаты"),
    "Delta": ("Changes since the previous version", "Алдыңғы нұсқадан өзгерістер", "Изменения с предыдущей версии"),
    "Covers": ("Offsets counted", "Есептелген ығысулар", "Учтённые смещения"),
}

_CONTRIBUTION_FIGURES = ("participants", "payers", "lines_posted", "amount_contributions", "amount_penalties",
                         "reversals.lines", "reversals.amount", "refunds.orders", "refunds.lines", "refunds.amount",
                         "deceased_alerts", "decided_after_deadline")
_TYPE_FIGURES = ("recipients_active_at_month_end", "assigned", "recalculated", "suspended", "resumed", "terminated",
                 "refused", "payments.count", "payments.gross", "payments.withheld", "payments.net",
                 "returns.count", "returns.amount", "overpaid.count", "overpaid.amount",
                 "overpaid_outstanding_at_month_end")


def _get(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def _is_amount(figure: str) -> bool:
    return figure.rsplit(".", 1)[-1] in AMOUNT_LEAVES


def _flatten_delta(tree: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten_delta(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            for item in value:
                name = item.get("period") or item.get("day")
                for leaf, v in item.items():
                    if leaf not in ("period", "day"):
                        yield f"{prefix}{key}.{name}.{leaf}", v
        else:
            yield f"{prefix}{key}", value


def _delta_label(path: str) -> tuple[str, str, str]:
    """The changed figure's own label, marked as a change."""
    parts = path.split(".")
    label = LABELS.get(".".join(parts[-2:])) or LABELS.get(parts[-1]) or REASON_LABELS.get(parts[-1])
    if label is None:
        return LABELS["change"]
    if parts[-2] == "by_reason":
        label = tuple(f"{x}: {y}" for x, y in zip(LABELS["lines"], label))
    return tuple(f"Δ {x}" for x in label)  # type: ignore[return-value]


def rows(report: dict) -> Iterator[tuple[str, str, str, tuple[str, str, str], object]]:
    """(section, item, figure, (en, kk, ru), value) for every figure of the report.

    Values as the report holds them: ints for counts, two-decimal strings for amounts.
    """
    for key in ("month", "version", "revision", "generated_at"):
        yield "Summary", "", key, LABELS[key], report[key]
    yield "Summary", "", "parts", LABELS["parts"], ", ".join(report.get("parts", ["contributions"]))
    c = report["contributions"]
    for fig in _CONTRIBUTION_FIGURES:
        yield "Contributions", "", fig, LABELS[fig], _get(c, fig)
    for item in c["by_period"]:
        for leaf in ("lines", "amount"):
            yield "By period", item["period"], leaf, LABELS[leaf], item[leaf]
    for item in c.get("by_day", []):
        for leaf in ("lines", "amount"):
            yield "By day", item["day"], leaf, LABELS[leaf], item[leaf]
    for reason, lines in c["refunds"]["by_reason"].items():
        yield "Refunds by reason", reason, "lines", REASON_LABELS.get(reason, (reason,) * 3), lines
    social = report.get("social_payments")
    if social:
        for ptype, figures in social["by_type"].items():
            for fig in _TYPE_FIGURES:
                yield "Social payments", ptype, fig, LABELS[fig], _get(figures, fig)
    if report.get("delta"):
        for path, value in _flatten_delta(report["delta"]):
            yield "Delta", path, "change", _delta_label(path), value
    for topic, partitions in report.get("covers", {}).items():
        for partition, offset in partitions.items():
            yield "Covers", f"{topic}/{partition}", "next_offset", LABELS["next_offset"], offset


def write_csv(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:  # the BOM makes Excel read UTF-8
        out = csv.writer(fh)
        out.writerow(["section", "item", "figure", "label_en", "label_kk", "label_ru", "value"])
        for section, item, figure, (en, kk, ru), value in rows(report):
            out.writerow([section, item, figure, en, kk, ru, value])
    return path


def _number(figure: str, value: object) -> tuple[object, str | None]:
    """An amount string as an exact Decimal with the tenge format; a count as an int."""
    if isinstance(value, str) and _is_amount(figure):
        return Decimal(value), TENGE_FORMAT
    if isinstance(value, int) and not isinstance(value, bool):
        return value, COUNT_FORMAT
    return value, None


def write_xlsx(report: dict, path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    bold = Font(bold=True)
    title_font = Font(bold=True, size=13)
    header_fill = PatternFill("solid", fgColor="DDE7F0")
    wb = Workbook()
    wb.remove(wb.active)
    sheets: dict[str, object] = {}
    version = VERSION_LABELS.get(report["version"], (report["version"],) * 3)

    def sheet(section: str, item_header: tuple[str, str, str] | None):
        ws = sheets.get(section)
        if ws is not None:
            return ws
        ws = wb.create_sheet(section)
        en, kk, ru = SECTION_TITLES[section]
        ws.append([f"{en} · {kk} · {ru}"])
        ws["A1"].font = title_font
        ws.append([f"{report['month']}, {version[0]} / {version[1]} / {version[2]}, revision {report['revision']}"])
        ws.append([])
        header = (["", "", ""] if item_header is None else list(item_header)) + \
            ["Figure", "Көрсеткіш", "Показатель", "Value · Мәні · Значение"]
        if item_header is None:
            header = header[3:]
        ws.append(header)
        for cell in ws[4]:
            cell.font = bold
            cell.fill = header_fill
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.freeze_panes = "A5"
        sheets[section] = ws
        return ws

    item_headers = {
        "By period": LABELS["period"], "By day": LABELS["day"], "Refunds by reason": LABELS["reason"],
        "Social payments": ("Payment type", "Төлем түрі", "Вид выплаты"),
        "Delta": ("Figure path", "Көрсеткіш жолы", "Путь показателя"),
        "Covers": ("Topic/partition", "Топик/бөлім", "Топик/партиция"),
    }
    for section, item, figure, (en, kk, ru), value in rows(report):
        has_item = section in item_headers
        ws = sheet(section, item_headers.get(section))
        number, fmt = _number(figure if section != "Delta" else item, value)
        if section == "Delta" and isinstance(value, str):
            number, fmt = Decimal(value), TENGE_FORMAT
        lead: list[object] = []
        if has_item:
            if section == "Refunds by reason":
                lead = [item, *REASON_LABELS.get(item, (item,) * 3)[1:]]
                en, kk, ru = LABELS["lines"]
            elif section == "Social payments":
                lead = list(TYPE_LABELS.get(item, (item,) * 3))
            else:
                lead = [item, "", ""]
        ws.append([*lead, en, kk, ru, number])
        if fmt:
            ws.cell(row=ws.max_row, column=len(lead) + 4).number_format = fmt
    for ws in wb.worksheets:
        widths: dict[int, int] = {}
        for row in ws.iter_rows(min_row=4):
            for cell in row:
                if cell.value is not None:
                    widths[cell.column] = max(widths.get(cell.column, 0), len(str(cell.value)))
        for column, width in widths.items():
            ws.column_dimensions[ws.cell(row=4, column=column).column_letter].width = min(max(width + 2, 10), 48)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_chart(report: dict, path: Path) -> Path:
    """Contributions by day of receipt (amount and lines), refunded lines by reason and, when held,
    social payments by type."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    c = report["contributions"]
    days = [date.fromisoformat(item["day"]) for item in c.get("by_day", [])]
    # Drawing only: the figures themselves stay exact in the report and the workbook.
    millions = [float(Decimal(item["amount"]) / Decimal(1_000_000)) for item in c.get("by_day", [])]
    lines = [item["lines"] for item in c.get("by_day", [])]
    reasons = [(r, n) for r, n in c["refunds"]["by_reason"].items() if n]
    reasons.sort(key=lambda rn: rn[1])

    social = report.get("social_payments")
    if social:
        fig, (top, bottom, third) = plt.subplots(3, 1, figsize=(10, 11.5), gridspec_kw={"height_ratios": [3, 2, 2]})
    else:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), gridspec_kw={"height_ratios": [3, 2]})
    calendar = default_calendar()
    top.bar(days, millions, color=["#2b6a99" if calendar.is_business_day(d) else "#a9bfd1" for d in days], width=0.8)
    top.set_ylabel("contributions and penalties, million KZT")
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.1f}"))
    twin = top.twinx()
    twin.plot(days, lines, color="#c0504d", marker="o", markersize=3, linewidth=1.2, label="lines posted")
    twin.set_ylabel("lines posted")
    twin.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    twin.set_ylim(bottom=0)
    twin.legend(loc="upper left")
    top.set_title(f"Contributions by day of receipt, {report['month']} (Asia/Almaty; days off pale)")
    top.grid(axis="y", alpha=0.3)
    for label in top.get_xticklabels():
        label.set_rotation(45)
        label.set_horizontalalignment("right")
    top.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%d %b"))

    if reasons:
        names = [r for r, _ in reasons]
        bottom.barh(names, [n for _, n in reasons], color="#c0504d")
        for y, (_, n) in enumerate(reasons):
            bottom.text(n, y, f" {n:,}", va="center", fontsize=8)
        bottom.set_xlim(right=max(n for _, n in reasons) * 1.12)
    else:
        bottom.text(0.5, 0.5, "no refunds", ha="center", va="center", transform=bottom.transAxes)
    refunds = c["refunds"]
    bottom.set_title(f"Refunded lines by reason: {refunds['lines']:,} lines in {refunds['orders']:,} orders, "
                     f"{Decimal(refunds['amount']):,.2f} KZT")
    bottom.set_xlabel("lines")
    bottom.grid(axis="x", alpha=0.3)
    if social:
        _social_panel(third, social["by_type"])

    version = report["version"] + (f" {report['revision']}" if report["version"] == "revised" else "")
    fig.suptitle(f"Monthly report {report['month']} ({version}): {c['participants']:,} participants, "
                 f"{c['payers']:,} payers, {c['lines_posted']:,} lines, "
                 f"{Decimal(c['amount_contributions']):,.2f} KZT contributions", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _social_panel(ax, by_type: dict) -> None:
    """Gross paid by payment type, each bar labelled with the month-end figures."""
    from matplotlib.ticker import FuncFormatter

    types = [t for t in PAYMENT_TYPES if t in by_type]
    gross = [float(Decimal(by_type[t]["payments"]["gross"]) / Decimal(1_000_000)) for t in types]
    ax.barh([TYPE_LABELS[t][0] for t in types], gross, color="#4f8f5b")
    for y, t in enumerate(types):
        f = by_type[t]
        ax.text(gross[y], y, f" {f['payments']['count']:,} payments; {f['recipients_active_at_month_end']:,} active at "
                f"month end; overpaid outstanding {Decimal(f['overpaid_outstanding_at_month_end']):,.2f} KZT",
                va="center", fontsize=8)
    ax.set_xlim(right=max(gross + [0.001]) * 2.4)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.1f}"))
    ax.set_xlabel("payments, gross, million KZT")
    total = sum(by_type[t]["recipients_active_at_month_end"] for t in types)
    ax.set_title(f"Social payments by type: {total:,} recipients active at month end")
    ax.grid(axis="x", alpha=0.3)


def write_files(report: dict, directory: Path) -> list[Path]:
    """`report-<month>-<version>[-<revision>].csv/.xlsx/.png` in `directory`: what `esep report YYYY-MM` writes."""
    stem = f"report-{report['month']}-{report['version']}"
    if report["version"] == "revised":
        stem += f"-{report['revision']}"
    base = directory / stem
    return [write_csv(report, base.with_suffix(".csv")), write_xlsx(report, base.with_suffix(".xlsx")),
            write_chart(report, base.with_suffix(".png"))]


# --- a synthetic month, for the sample and the tests -------------------------------------------------

def _valid_iin(rng: random.Random) -> str:
    while True:
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 45))
        first11 = f"{born:%y%m%d}{3 if born.year < 2000 else 5}{rng.randrange(10_000):04d}"
        digit = check_digit(first11)
        if digit is not None:
            return first11 + str(digit)


def sample_records(month: str = "2026-01", seed: int = 7, orders_per_day: int = 60) -> dict[str, list[dict]]:
    """Output records of a plausible month: business days busy, the 20th-25th busiest (the deadline of
    the previous month's contributions), a few refunds with each reason, late orders, deceased alerts."""
    rng = random.Random(seed)
    year, mon = int(month[:4]), int(month[5:])
    calendar = default_calendar()
    people = [_valid_iin(rng) for _ in range(orders_per_day * 100)]
    payers = [_valid_iin(rng) for _ in range(orders_per_day * 5)]
    previous = f"{year - 1}-12" if mon == 1 else f"{year}-{mon - 1:02d}"
    weights = {r: w for r, w in zip(LINE_REASONS, (8, 3, 1, 6, 5, 2, 1))}
    out: dict[str, list[dict]] = {"contributions": [], "refunds": [], "results": [], "alerts": [], "reversals": [],
                                  **sample_social_payments(month, rng, people, orders_per_day)}
    day = date(year, mon, 1)
    n = 0
    while day.month == mon:
        busy = orders_per_day * (2.2 if 20 <= day.day <= 25 else 1.0)
        count = int(busy * (1.0 if calendar.is_business_day(day) else 0.08) * rng.uniform(0.8, 1.2))
        for _ in range(count):
            n += 1
            nid = f"{day:%Y%m%d}-{n:06d}"
            at = datetime(day.year, day.month, day.day, rng.randrange(8, 20), rng.randrange(60), tzinfo=ALMATY)
            received = at.isoformat()
            knp = "017" if rng.random() < 0.06 else "012"
            payer = rng.choice(payers)
            refunded: list[str | None] = []
            whole = rng.random() < 0.01
            for line_no in range(1, rng.choice((1, 1, 2, 3, 5, 8, 20)) + 1):
                tiyn = rng.randrange(100_00, 5000_00) if knp == "017" else rng.randrange(4250, 29751) * 100
                if whole or rng.random() < 0.025:
                    reason = "TOTAL_MISMATCH" if whole else rng.choices(list(weights), list(weights.values()))[0]
                    refunded.append(reason)
                    if reason == "DECEASED":
                        out["alerts"].append({"alert_id": f"{nid}/{line_no}", "iin": rng.choice(people),
                                              "received_at": received})
                    continue
                out["contributions"].append({
                    "entry_id": f"{nid}/{line_no}", "iin": rng.choice(people), "knp": knp, "amount": format_tiyn(tiyn),
                    "period": previous if rng.random() < 0.85 else month, "received_at": received,
                    "payer_bin_iin": payer})
            if refunded:
                out["refunds"].append({
                    "refund_id": f"{nid}/refund", "notification_id": nid, "scope": "order" if whole else "lines",
                    "reason": "TOTAL_MISMATCH" if whole else None, "received_at": received,
                    "amount": format_tiyn(len(refunded) * 4250_00),
                    "lines": [{"reason": None if whole else r} for r in refunded]})
            late = rng.random() < 0.002
            decided = calendar.receipt_deadline(at) + timedelta(hours=2) if late else at + timedelta(seconds=3)
            out["results"].append({"notification_id": nid, "received_at": received, "decided_at": decided.isoformat()})
        day += timedelta(days=1)
    for entry in rng.sample(out["contributions"], k=min(12, len(out["contributions"]))):
        out["reversals"].append({"entry_id": f"{entry['entry_id']}/reversal", "amount": entry["amount"],
                                 "received_at": entry["received_at"]})
    return out


# Recipients per payment type, per 60 orders a day of the sample.
_RECIPIENTS = {"loss_of_working_capacity": 30, "loss_of_breadwinner": 20, "loss_of_job": 50,
               "pregnancy_and_childbirth": 25, "adoption": 3, "child_care": 60}


def sample_social_payments(month: str, rng: random.Random, people: list[str],
                           orders_per_day: int = 60) -> dict[str, list[dict]]:
    """Decision results and posted transfers as the recipients ledger writes them: assignments
    decided in the months before (some ending before or during this month), this month's new
    assignments, suspensions and terminations, a payment for each recipient active in the month
    (a few overpaid), and a few returns of overpayments."""
    year, mon = int(month[:4]), int(month[5:])
    first = date(year, mon, 1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    decisions: list[dict] = []
    transfers: list[dict] = []

    def result(n: str, iin: str, ptype: str, kind: str, decided: date, effective: date, end: date | None) -> None:
        decisions.append({"decision_id": n, "iin": iin, "decision": kind, "payment_type": ptype, "status": "applied",
                          "assignment_no": 1, "decided_on": decided.isoformat(),
                          "effective_from": effective.isoformat(), "end_date": end and end.isoformat()})

    def at(day: date) -> str:
        return datetime(day.year, day.month, day.day, rng.randrange(9, 18), rng.randrange(60), tzinfo=ALMATY).isoformat()

    for ptype in PAYMENT_TYPES:
        n_recipients = max(1, _RECIPIENTS[ptype] * orders_per_day // 60)
        for i, iin in enumerate(rng.sample(people, n_recipients)):
            tag = f"{month}-{ptype}-{i}"
            new = rng.random() < 0.12
            start = first + timedelta(days=rng.randrange(20)) if new else first - timedelta(days=rng.randrange(20, 300))
            months = rng.choice((None, 3, 6, 12))
            end = None
            if months is not None:
                end_month = date(start.year + (start.month - 1 + months) // 12, (start.month - 1 + months) % 12 + 1, 1)
                end = end_month - timedelta(days=1)
            result(f"{tag}/assign", iin, ptype, "assign", start, start, end)
            if end is not None and end < first:
                continue  # the term is over: no payment, not active
            monthly = rng.randrange(40_000, 160_000) * 100
            event = rng.random()
            day = first + timedelta(days=rng.randrange(5, 25))
            if event < 0.05:
                result(f"{tag}/suspend", iin, ptype, "suspend", day, day, end)
            elif event < 0.08:
                result(f"{tag}/terminate", iin, ptype, "terminate", day, day + timedelta(days=1), day)
            paid = first + timedelta(days=rng.randrange(9, 26))
            if start > last:
                continue
            overpaid = monthly // 2 if rng.random() < 0.04 else 0
            gross = monthly + overpaid
            withheld = gross // 10
            transfers.append({"entry_id": f"{tag}/pay", "iin": iin, "payment_type": ptype, "kind": "payment",
                              "gross_amount": format_tiyn(gross), "pension_contribution_withheld": format_tiyn(withheld),
                              "net_amount": format_tiyn(gross - withheld), "overpaid_amount": format_tiyn(overpaid),
                              "applied_to_overpayment": "0.00", "received_at": at(paid)})
            if overpaid and rng.random() < 0.5:
                back = overpaid // 2
                transfers.append({"entry_id": f"{tag}/return", "iin": iin, "payment_type": ptype, "kind": "return",
                                  "gross_amount": format_tiyn(back), "pension_contribution_withheld": "0.00",
                                  "net_amount": format_tiyn(back), "overpaid_amount": "0.00",
                                  "applied_to_overpayment": format_tiyn(back),
                                  "received_at": at(min(last, paid + timedelta(days=3)))})
    decisions.sort(key=lambda r: r["decided_on"])  # the ledger's order: as decided
    return {"decisions": decisions, "social_payments": transfers}


def sample_report(month: str = "2026-01", seed: int = 7, orders_per_day: int = 60, partitions: int = 4) -> dict:
    """A `final` of a synthetic month, assembled as the pipeline does: partials per partition, merged,
    with a delta against a preliminary that missed the month's last order."""
    records = sample_records(month, seed, orders_per_day)
    streams = {name: [Partial() for _ in range(partitions)] for name in ("persons", "orders", "payers")}

    def home(key: str) -> int:
        return zlib.crc32(key.encode()) % partitions

    def feed(upto_last: bool) -> None:
        for source, rs in records.items():
            chosen = rs if upto_last else rs[:-1]
            for offset, r in enumerate(chosen):
                if source in ("refunds", "results"):
                    streams["orders"][home(r["notification_id"])].apply(source, r)
                    continue
                key = r.get("iin") or r["entry_id"]
                streams["persons"][home(key)].apply(source, r, topic=f"posted.{source}", partition=home(key),
                                                    offset=offset)
                if source == "contributions":
                    streams["payers"][home(r["payer_bin_iin"])].apply("payers", r)

    def figures() -> dict:
        return merge(p.figures(month) for ps in streams.values() for p in ps)

    feed(upto_last=False)
    preliminary = figures()
    feed(upto_last=True)  # the last records again: repeats count nothing, the missing ones count
    covers = merge_covers(p.covers for ps in streams.values() for p in ps)

    generated = final_due(month, default_calendar())
    return build_report(month, "final", 0, generated, figures(), covers, previous=preliminary, parts=PARTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a sample monthly report as CSV, XLSX and PNG.")
    parser.add_argument("--sample", type=Path, required=True, help="directory to write into")
    parser.add_argument("--month", default="2026-01")
    parser.add_argument("--png", type=Path, help="also write the chart here (e.g. docs/report-sample.png)")
    args = parser.parse_args(argv)
    report = sample_report(args.month)
    for path in write_files(report, args.sample):
        print(path)
    if args.png:
        print(write_chart(report, args.png))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
