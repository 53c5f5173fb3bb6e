"""Recognising consent, never guessing it: a yes/no question, an opt-out flag, a subscription
status or the time of an unsubscription; and a column that names a legal basis per row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from importer.headers import header_key
from importer.scaffold.shapes import looks_like_yes_no
from importer.transforms import fold

# Headers of consent questions and of opt-outs (compared as `header_key` leaves them); a
# column counts only when its cells are yes/no too. An opt-out word wins: "Não deseja receber
# e-mails?" is an opt-out, "Deseja receber e-mails?" a question.
CONSENT_WORDS = (
    "aceit",
    "consent",
    "optin",
    "lgpd",
    "autoriz",
    "permi",
    "concord",
    "receb",
    "novidades",
    "newsletter",
    "comunica",
    "inscrev",
    "subscri",
)
OPT_OUT_WORDS = (
    "unsub",
    "optout",
    "optedout",
    "descadastr",
    "cancelou",
    "cancelad",
    "cancelar",
    "recusa",
    "naoreceber",
    "naoenviar",
    "naodeseja",
    "naoquer",
    "donotemail",
    "donotcontact",
    "donotmail",
)
# Subscription statuses (folded): what each says of consent. A column whose every filled cell
# is one of these, with one that grants or declines, is a status column, whatever its header
# (Pipedrive's "Marketing status", a Mailchimp "Status").
STATUSES: dict[str, bool | None] = {
    **dict.fromkeys(("subscribed", "inscrito", "inscrita", "assinante"), True),
    **dict.fromkeys(
        (
            "unsubscribed",
            "descadastrado",
            "descadastrada",
            "cancelou a inscricao",
            "inscricao cancelada",
            "opted out",
        ),
        False,
    ),
    **dict.fromkeys(
        (
            "no consent",
            "sem consentimento",
            "non-subscribed",
            "nao inscrito",
            "pending",
            "pendente",
            "archived",
            "arquivado",
            "cleaned",
            "transactional",
            "transacional",
        ),
        None,
    ),
}
# Headers a status column may have: a value like "Cancelado" elsewhere is a customer's status
STATUS_WORDS = ("status", "marketing", "inscri", "subscri", "newsletter", "email", "consent")
# A column of the time someone unsubscribed (Mailchimp's UNSUB_TIME): filled is an opt-out.
UNSUBSCRIBED_AT = ("unsubtime", "unsubscribedat", "unsubscribedate", "datadedescadastro")
# Columns that name a legal basis per row (HubSpot's, RD Station's): pointed at, not mapped.
LEGAL_BASIS_WORDS = ("legalbasis", "baselegal")


ConsentKind = Literal["question", "opt_out", "status", "unsubscribed_at"]


@dataclass
class Consent:
    """A column that says, row by row, whether a lead accepts communications."""

    column: str
    kind: ConsentKind
    statuses: dict[str, bool | None] = field(default_factory=dict)  # "status": value -> meaning


def consent_of(header: str, values: Sequence[str]) -> Consent | None:
    """The consent column ``header`` is, judging by its header and sampled cells; None if none."""
    key = header_key(header)
    filled = [v.strip() for v in values if v.strip()]
    if key in UNSUBSCRIBED_AT:
        return Consent(header, "unsubscribed_at")
    if not filled:
        return None
    if all(looks_like_yes_no(v) for v in filled):
        if key.startswith("nao") or any(w in key for w in OPT_OUT_WORDS):
            return Consent(header, "opt_out")
        if any(w in key for w in CONSENT_WORDS):
            return Consent(header, "question")
        return None
    distinct = list(dict.fromkeys(filled))
    if not any(w in key for w in STATUS_WORDS) or any(fold(v) not in STATUSES for v in distinct):
        return None
    meanings = {v: STATUSES[fold(v)] for v in distinct}
    if all(m is None for m in meanings.values()):
        return None
    return Consent(header, "status", meanings)
