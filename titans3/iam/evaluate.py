"""Deciding one request against a set of policies (AWS's policy evaluation logic).

Theory of operation
-------------------
A request is an :class:`Identity` (who), an action (``s3:GetObject``), a
resource ARN and a condition context (``conditions.Context``).  A statement
*applies* when its principal (resource policies), action, resource and every
condition match.  Then, over every policy that bears on the request:

1. an applying ``Deny`` is an explicit deny: the answer is DENY, whatever else
   allows;
2. otherwise an applying ``Allow`` makes it ALLOW;
3. otherwise NONE -- the implicit deny, which other sources (ACLs, ownership)
   may still turn into an allow.

:func:`decide` stops at the first explicit deny, so a policy set is scanned
at most once per request.  Principals, as AWS matches them: ``*`` and
``{"AWS": "*"}`` match everyone, the anonymous requester included; an IAM
user ARN matches that user; a canonical id matches the identity with that id;
an account (``123456789012`` or ``arn:aws:iam::123456789012:root``) matches
that account's root for an Allow and *everyone in that account* for a Deny
(an Allow to an account delegates to it: its users still need their own
identity policies).  Service and federated principals match nobody here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from titans3.iam import wildcard
from titans3.iam.conditions import Context, substitute
from titans3.iam.policy import Policy, PrincipalSet, Statement

__all__ = ["ANONYMOUS", "Decision", "Identity", "decide", "principal_matches", "statement_applies"]


@dataclass(frozen=True, slots=True)
class Identity:
    """The requester as policies see it."""

    kind: str  # "root" | "user" | "anonymous"
    account: str = ""  # 12-digit id of the identity's account ("" when anonymous)
    arn: str = ""
    canonical_id: str = ""
    name: str = ""  # user name (aws:username); "" for root and anonymous
    user_id: str = ""  # aws:userid

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Identity("anonymous", user_id="anonymous")


class Decision(enum.Enum):
    DENY = "deny"  # an explicit Deny applied
    ALLOW = "allow"
    NONE = "none"  # nothing applied: the implicit deny


def principal_matches(ps: PrincipalSet, who: Identity, *, deny: bool) -> bool:
    if ps.everyone:
        return True
    if who.anonymous:
        return False
    for item in ps.aws:
        if item.isdigit() or item.endswith(":root"):
            account = item if item.isdigit() else item.split(":")[4]
            if account == who.account and (deny or who.kind == "root"):
                return True
        elif item == who.arn:
            return True
    return bool(who.canonical_id) and who.canonical_id in ps.canonical


def _action_matches(patterns: tuple[str, ...], action: str) -> bool:
    return any(p == "*" or wildcard.match_ci(p, action) for p in patterns)


def _resource_matches(st: Statement, resource: str, ctx: Context) -> bool:
    for pattern in st.resources:
        if st.variables and "${" in pattern:
            resolved = substitute(pattern, ctx)
            if resolved is None:
                continue  # a variable without a value matches no resource
            pattern = resolved
        if pattern == "*" or wildcard.match(pattern, resource):
            return True
    return False


def statement_applies(
    st: Statement, who: Identity, action: str, resource: str, ctx: Context
) -> bool:
    if st.principal is not None:
        hit = principal_matches(st.principal, who, deny=not st.allows)
        if hit == st.not_principal:
            return False
    if _action_matches(st.actions, action) == st.not_action:
        return False
    if _resource_matches(st, resource, ctx) == st.not_resource:
        return False
    return all(c.holds(ctx) for c in st.conditions)


def decide(
    policies: Iterable[Policy], who: Identity, action: str, resource: str, ctx: Context
) -> Decision:
    """Explicit Deny > Allow > NONE over every statement of ``policies``."""
    allowed = False
    for policy in policies:
        for st in policy.statements:
            if (st.allows and allowed) or not statement_applies(st, who, action, resource, ctx):
                continue
            if not st.allows:
                return Decision.DENY
            allowed = True
    return Decision.ALLOW if allowed else Decision.NONE
