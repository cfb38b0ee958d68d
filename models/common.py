"""Types shared by every topic model of the integration contract (version 1)."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rules.money import format_tiyn, parse_amount

from .bounds import MAX_AMOUNT_CHARS, MAX_TOTAL_TIYN

SCHEMA_VERSION = 1

# Amounts travel as strings: binary floats never carry money.
OUTPUT_AMOUNT_PATTERN = r"^-?\d+\.\d{2}$"


def _positive_amount(value: str) -> str:
    tiyn = parse_amount(value)
    if tiyn is None:
        raise ValueError("must be a decimal string with at most two decimals, e.g. \"4250.00\"")
    if tiyn <= 0:
        raise ValueError("must be positive")
    if tiyn > MAX_TOTAL_TIYN:
        raise ValueError(f"must be at most {format_tiyn(MAX_TOTAL_TIYN)} (bounds)")
    return value


PositiveAmount = Annotated[
    str,
    AfterValidator(_positive_amount),
    Field(max_length=MAX_AMOUNT_CHARS, examples=["59000.00"],
          description=f"tenge as a decimal string with at most two decimals, above zero and at most "
                      f"{format_tiyn(MAX_TOTAL_TIYN)}"),
]
OutputAmount = Annotated[
    str, Field(pattern=OUTPUT_AMOUNT_PATTERN, description="tenge, exactly two decimals", examples=["4250.00"])
]
Iin = Annotated[str, Field(pattern=r"^[0-9]{12}$", description="IIN or BIN: 12 digits", examples=["870314312348"])]
Period = Annotated[str, Field(description="YYYY-MM", examples=["2026-10"])]


class InputModel(BaseModel):
    """Inputs: strict JSON types (an amount sent as a number is a schema error), unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class OutputModel(BaseModel):
    """Outputs: exactly the contract's fields; used for schemas and to check what the worker emits."""

    model_config = ConfigDict(strict=True, extra="forbid")
