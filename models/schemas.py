"""JSON Schemas of the contract, generated from the models (the single source). `esep schemas`
rewrites models/schemas/*.json; a test fails when the committed files drift from the models."""
from __future__ import annotations

import json
from pathlib import Path

from .audit import AuditAccess
from .fund import DecisionResult, Overpayment, PaymentDecision, PaymentTransfer, PostedSocialPayment, RecipientAccount
from .notifications import CreditNotification
from .outputs import DeadLetter, DeceasedContribution, OrderResult, PersonChange, PostedContribution, Refund
from .registry import RegistryPerson
from .reversals import RefundDecision, ReversalEntry, ReversalRefund
from .report import MonthlyReport, ReportPartial

SCHEMA_DIR = Path(__file__).parent / "schemas"

TOPIC_MODELS = {
    "bank.credit-notifications": CreditNotification,
    "registry.persons": RegistryPerson,
    "posted.contributions": PostedContribution,
    "refunds.to-payers": Refund,
    "orders.results": OrderResult,
    "errors.dead-letters": DeadLetter,
    "alerts.deceased-contributions": DeceasedContribution,
    "registry.changes": PersonChange,
    "fund.refund-decisions": RefundDecision,
    "posted.reversals": ReversalEntry,
    "refunds.reversals": ReversalRefund,
    "audit.access": AuditAccess,
    "reports.monthly": MonthlyReport,
    "reports.partials": ReportPartial,
    "fund.payment-decisions": PaymentDecision,
    "fund.payment-transfers": PaymentTransfer,
    "fund.decision-results": DecisionResult,
    "recipients.accounts": RecipientAccount,
    "posted.social-payments": PostedSocialPayment,
    "fund.overpayments": Overpayment,
}


def render(topic: str) -> str:
    schema = TOPIC_MODELS[topic].model_json_schema(mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"esep:v1:{topic}", **schema}
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(exist_ok=True)
    paths = []
    for topic in TOPIC_MODELS:
        path = directory / f"{topic}.json"
        path.write_text(render(topic), encoding="utf-8")
        paths.append(path)
    return paths
