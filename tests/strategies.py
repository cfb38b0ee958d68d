"""Hypothesis strategies shared by the property tests: notifications built from the registry of
tests/cases.py, each line the person as is or with one harmless or harmful change."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from .cases import A, B, C, example_notification

# A line is one of: a registry person as is, or with one harmless or harmful change.
MUTATIONS = ["same", "upper", "bad_iin", "unknown", "other_name", "zero", "future_period", "other_birth"]


@st.composite
def orders(draw):
    people = [A, B, C]
    n = draw(st.integers(min_value=1, max_value=8))
    lines = []
    for i in range(n):
        person = draw(st.sampled_from(people))
        amount = draw(st.integers(min_value=0, max_value=3_000_000))
        line = {"line_no": i + 1, **person, "amount": f"{amount // 100}.{amount % 100:02d}"}
        mutation = draw(st.sampled_from(MUTATIONS))
        if mutation == "upper":
            line["surname"] = line["surname"].upper() + " "
        elif mutation == "bad_iin":
            line["iin"] = line["iin"][:-1] + str((int(line["iin"][-1]) + 1) % 10)
        elif mutation == "unknown":
            line["iin"] = "900505300407"
        elif mutation == "other_name":
            line["name"] = "Другое"
        elif mutation == "zero":
            line["amount"] = "0"
        elif mutation == "future_period":
            line["period"] = "2027-01"
        elif mutation == "other_birth":
            line["birth_date"] = "1970-01-01"
        lines.append(line)
    total = sum(Decimal(ln["amount"]) for ln in lines)
    if draw(st.booleans()) and total > 0:
        total_text = str(total)
    else:
        total_text = str(total + draw(st.sampled_from([Decimal("0.01"), Decimal("1")])))
    knp = draw(st.sampled_from(["012", "017", "010"]))
    return {**example_notification(), "notification_id": "P-1", "knp": knp, "total_amount": total_text,
            "lines": lines}
