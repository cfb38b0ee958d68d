"""The state of one recipient for one payment type, as a plain value.

It lives in a key-value store backed by a compacted changelog per (IIN, payment_type), so it is
made of JSON types only: `to_json()` gives a dict `orjson` can encode and `from_json()` reads it
back; dates are ISO strings (they compare like dates), months are integers (year * 12 + month - 1)
and amounts integer tiyn."""
from __future__ import annotations

from dataclasses import dataclass, field

STATE_VERSION = 1


@dataclass(slots=True)
class Assignment:
    """One assignment (an applied assign) and everything later decisions changed in it."""

    no: int
    first_month: int
    end: str | None  # the last day paid for; None = open
    terminated: bool = False  # the end was set by a terminate decision
    # (effective_from, "active" | "suspended") in arrival order: a later arrival wins from its date on.
    events: list[list] = field(default_factory=list)
    # (first month, monthly amount in tiyn, rate or None = the rate before stays) in arrival order.
    amounts: list[list] = field(default_factory=list)
    risk_dates: list[str] = field(default_factory=list)  # risk_occurred_on of the assign and recalculations

    def to_json(self) -> dict:
        return {"no": self.no, "first": self.first_month, "end": self.end, "term": self.terminated,
                "ev": [list(e) for e in self.events], "am": [list(a) for a in self.amounts],
                "risk": list(self.risk_dates)}

    @classmethod
    def from_json(cls, obj: dict) -> Assignment:
        return cls(obj["no"], obj["first"], obj["end"], obj["term"], [list(e) for e in obj["ev"]],
                   [list(a) for a in obj["am"]], list(obj["risk"]))


@dataclass(slots=True)
class Person:
    """The recipient's personal data (clause 12) with the histories of document and citizenship.

    `last` keeps what each source (the decisions' recipient block, the registry) said last: a value
    becomes current only when its own source changes it, so two sources that disagree do not make
    the record flip at every decision."""

    fields: dict = field(default_factory=dict)
    document_history: list[dict] = field(default_factory=list)
    citizenship_history: list[dict] = field(default_factory=list)
    last: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"f": dict(self.fields), "dh": [dict(d) for d in self.document_history],
                "ch": [dict(c) for c in self.citizenship_history], "last": {k: dict(v) for k, v in self.last.items()}}

    @classmethod
    def from_json(cls, obj: dict) -> Person:
        return cls(dict(obj["f"]), [dict(d) for d in obj["dh"]], [dict(c) for c in obj["ch"]],
                   {k: dict(v) for k, v in obj["last"].items()})


@dataclass(slots=True)
class RecipientState:
    iin: str
    payment_type: str
    state: str = "none"
    state_since: str | None = None
    decided_on: str | None = None  # of the last applied decision
    assignments: list[Assignment] = field(default_factory=list)
    # The record's assignment fields as last decided (clause 12), output-ready except amounts in tiyn.
    terms: dict = field(default_factory=dict)
    person: Person = field(default_factory=Person)
    paid_gross: int = 0
    paid_withheld: int = 0
    paid_net: int = 0
    returned: int = 0
    # Outstanding overpayments, oldest first: [transfer_id, period, tiyn still to recover].
    overpayments: list[list] = field(default_factory=list)
    covered: dict[str, int] = field(default_factory=dict)  # covered gross posted per period
    decisions_seen: set[str] = field(default_factory=set)
    transfers_seen: set[str] = field(default_factory=set)
    has_record: bool = False  # a recipients.accounts record was emitted

    @property
    def assignment_no(self) -> int | None:
        return self.assignments[-1].no if self.assignments else None

    @property
    def current(self) -> Assignment | None:
        return self.assignments[-1] if self.assignments else None

    @property
    def outstanding(self) -> int:
        return sum(o[2] for o in self.overpayments)

    def to_json(self) -> dict:
        return {
            "v": STATE_VERSION, "iin": self.iin, "type": self.payment_type, "state": self.state,
            "since": self.state_since, "decided_on": self.decided_on,
            "asg": [a.to_json() for a in self.assignments], "terms": dict(self.terms),
            "person": self.person.to_json(),
            "paid": [self.paid_gross, self.paid_withheld, self.paid_net], "returned": self.returned,
            "over": [list(o) for o in self.overpayments], "covered": dict(self.covered),
            "dseen": sorted(self.decisions_seen), "tseen": sorted(self.transfers_seen), "rec": self.has_record,
        }

    @classmethod
    def from_json(cls, obj: dict) -> RecipientState:
        if obj.get("v") != STATE_VERSION:
            raise ValueError(f"recipient state version {obj.get('v')!r} is not {STATE_VERSION}")
        gross, withheld, net = obj["paid"]
        return cls(
            obj["iin"], obj["type"], obj["state"], obj["since"], obj["decided_on"],
            [Assignment.from_json(a) for a in obj["asg"]], dict(obj["terms"]), Person.from_json(obj["person"]),
            gross, withheld, net, obj["returned"], [list(o) for o in obj["over"]], dict(obj["covered"]),
            set(obj["dseen"]), set(obj["tseen"]), obj["rec"],
        )

    def copy(self) -> RecipientState:
        """A deep copy: the rules never change the state they are given. (Not via JSON: sorting the
        seen ids on every record would cost more than deciding it.)"""
        p = self.person
        return RecipientState(
            self.iin, self.payment_type, self.state, self.state_since, self.decided_on,
            [Assignment(a.no, a.first_month, a.end, a.terminated, [list(e) for e in a.events],
                        [list(x) for x in a.amounts], list(a.risk_dates)) for a in self.assignments],
            dict(self.terms),
            Person({k: (dict(v) if isinstance(v, dict) else v) for k, v in p.fields.items()},
                   [dict(d) for d in p.document_history], [dict(c) for c in p.citizenship_history],
                   {k: {f: (dict(v) if isinstance(v, dict) else v) for f, v in src.items()}
                    for k, src in p.last.items()}),
            self.paid_gross, self.paid_withheld, self.paid_net, self.returned,
            [list(o) for o in self.overpayments], dict(self.covered), set(self.decisions_seen),
            set(self.transfers_seen), self.has_record,
        )


def new_state(iin: str, payment_type: str) -> RecipientState:
    return RecipientState(iin, payment_type)
