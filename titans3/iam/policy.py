"""IAM policy documents: parse, validate, and keep as immutable statements.

Theory of operation
-------------------
One parser serves both kinds of policy AWS has here:

* **resource policies** (bucket policies, ``PutBucketPolicy``): every
  statement names a ``Principal`` (or ``NotPrincipal``, Deny only), its actions
  are S3's and its resources are the bucket and objects in it;
* **identity policies** (``PutUserPolicy``): no principal (it is the user the
  policy is attached to); actions and resources of any service, ``*`` allowed.

A document that is not acceptable raises :class:`PolicyError` carrying the
message AWS answers with (``MalformedPolicy`` from S3, ``MalformedPolicyDocument``
from IAM; the front chooses the code).  Messages follow what S3 was observed
to answer: "Policies must be valid JSON and the first byte must be '{'",
"Missing required field Statement", "Invalid principal in policy", "Policy has
invalid resource", "Policy has invalid action", "Action does not apply to any
resource(s) in statement", "Policy has an invalid condition key", "Invalid
Condition type : X", "Invalid effect: X", "The policy must contain a valid
version string".

Everything a request evaluation needs is precomputed here -- action patterns
lower-cased, conditions compiled with their values parsed -- and the parsed
:class:`Policy` is immutable, so the front caches it per bucket record version
and evaluation never reparses.  The text as sent is kept (``Policy.text``) for
GetBucketPolicy, which returns the document the client stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from titans3.iam import actions as s3actions
from titans3.iam import wildcard
from titans3.iam.conditions import Condition, ConditionError, compile_condition

__all__ = [
    "MAX_BUCKET_POLICY", "Policy", "PolicyError", "PrincipalSet", "Statement", "parse_policy",
]  # fmt: skip

MAX_BUCKET_POLICY = 20480  # bytes of the normalized document (AWS)
VERSIONS = ("2008-10-17", "2012-10-17")
_TOP = frozenset({"Version", "Id", "Statement"})
_STMT = frozenset({"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                   "Resource", "NotResource", "Condition"})  # fmt: skip
_PRINCIPAL_TYPES = frozenset({"AWS", "CanonicalUser", "Service", "Federated"})
_ACCOUNT = re.compile(r"\d{12}")
_IAM_ARN = re.compile(r"arn:aws:iam::(\d{12}):(root|user/.+|role/.+|assumed-role/.+|federated-user/.+)")
_CANONICAL = re.compile(r"[0-9a-fA-F]{64}")
_ACTION = re.compile(r"[A-Za-z0-9*?-]+:[A-Za-z0-9*?]+")
S3_ARN = "arn:aws:s3:::"


class PolicyError(ValueError):
    """The document is refused; ``message`` is AWS's wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class PrincipalSet:
    """Who a statement is about, as written (see ``evaluate.principal_matches``)."""

    everyone: bool = False
    aws: tuple[str, ...] = ()  # account ids and IAM ARNs
    canonical: tuple[str, ...] = ()  # canonical user ids, lower case
    services: tuple[str, ...] = ()
    federated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Statement:
    sid: str
    effect: str  # "Allow" | "Deny"
    principal: PrincipalSet | None  # None: identity policy
    not_principal: bool
    actions: tuple[str, ...]  # lower case patterns
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    conditions: tuple[Condition, ...]
    variables: bool  # version 2012-10-17: ${...} in resources are policy variables

    @property
    def allows(self) -> bool:
        return self.effect == "Allow"


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    id: str | None
    statements: tuple[Statement, ...]
    text: str  # the document as stored

    @property
    def has_deny(self) -> bool:
        return any(not s.allows for s in self.statements)


def _list(value: Any, what: str) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PolicyError(f"Policy has an empty {what} list")
    return items


def _strings(value: Any, error: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) and i for i in items):
        raise PolicyError(error)
    return items


def _load_json(text: str) -> Any:
    if not text.lstrip().startswith("{"):
        raise PolicyError("Policies must be valid JSON and the first byte must be '{'")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ValueError(f"duplicate key {k}")
            out[k] = v
        return out

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except (ValueError, RecursionError):
        raise PolicyError("This policy contains invalid Json") from None


def parse_policy(
    text: str | bytes,
    *,
    resource_policy: bool,
    bucket: str | None = None,
    principal_ok: Callable[[str, str], bool] | None = None,
    max_size: int | None = MAX_BUCKET_POLICY,
) -> Policy:
    """Parse one policy document or raise :class:`PolicyError`.

    ``resource_policy``: a bucket policy for ``bucket`` (principals required,
    resources inside the bucket, S3 actions only).  ``principal_ok(type, value)``
    decides whether a principal that is well-formed also exists (an IAM user
    ARN of this account that names no user is "Invalid principal in policy").
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("Policies must be valid JSON and the first byte must be '{'") from None
    doc = _load_json(text)
    if not isinstance(doc, dict):
        raise PolicyError("Policies must be valid JSON and the first byte must be '{'")
    if max_size is not None and len(json.dumps(doc, separators=(",", ":"))) > max_size:
        raise PolicyError(
            f"Normalized policy document exceeds the maximum allowed size of {max_size} bytes"
        )
    for name in doc:
        if name not in _TOP:
            raise PolicyError(f"Unknown field {name}")
    version = doc.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise PolicyError("The policy must contain a valid version string")
    pid = doc.get("Id")
    if pid is not None and not isinstance(pid, str):
        raise PolicyError("Invalid policy syntax.")
    if "Statement" not in doc:
        raise PolicyError("Missing required field Statement")
    raw_statements = doc["Statement"]
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list):
        raise PolicyError("Invalid policy syntax.")
    if not raw_statements:
        raise PolicyError("Could not parse the policy: Statement is empty!")
    statements = []
    sids: set[str] = set()
    for raw in raw_statements:
        st = _statement(raw, version, resource_policy, bucket, principal_ok)
        if st.sid:
            if st.sid in sids:
                raise PolicyError("Statement IDs (SID) in a single policy must be unique")
            sids.add(st.sid)
        statements.append(st)
    return Policy(version, pid, tuple(statements), text)


def _statement(
    raw: Any, version: str, resource_policy: bool, bucket: str | None,
    principal_ok: Callable[[str, str], bool] | None,
) -> Statement:  # fmt: skip
    if not isinstance(raw, dict):
        raise PolicyError("Invalid policy syntax.")
    for name in raw:
        if name not in _STMT:
            raise PolicyError(f"Unknown field {name}")
    sid = raw.get("Sid", "")
    if not isinstance(sid, str):
        raise PolicyError("Invalid policy syntax.")
    if "Effect" not in raw:
        raise PolicyError("Missing required field Effect")
    effect = raw["Effect"]
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"Invalid effect: {effect}")
    for a, b in (("Principal", "NotPrincipal"), ("Action", "NotAction"), ("Resource", "NotResource")):
        if a in raw and b in raw:
            raise PolicyError(f"Statement cannot have both {a} and {b}")  # "Invalid policy syntax." on AWS

    # principals
    principal: PrincipalSet | None = None
    not_principal = "NotPrincipal" in raw
    if resource_policy:
        if "Principal" not in raw and not not_principal:
            raise PolicyError("Missing required field Principal")
        if not_principal and effect != "Deny":
            raise PolicyError("Invalid principal in policy")  # NotPrincipal works with Deny only
        principal = _principals(raw["NotPrincipal" if not_principal else "Principal"], principal_ok)
    elif "Principal" in raw or not_principal:
        raise PolicyError("Policy document should not specify a principal.")

    # actions
    not_action = "NotAction" in raw
    if "Action" not in raw and not not_action:
        raise PolicyError("Missing required field Action")
    acts = _strings(raw["NotAction" if not_action else "Action"], "Policy has invalid action")
    for act in acts:
        if act != "*" and not _ACTION.fullmatch(act):
            raise PolicyError("Policy has invalid action")
        if resource_policy and act != "*":
            service = act.split(":", 1)[0].lower()
            if not wildcard.match_ci(service, "s3") or not s3actions.matching(act):
                raise PolicyError("Policy has invalid action")

    # resources
    not_resource = "NotResource" in raw
    if "Resource" not in raw and not not_resource:
        raise PolicyError("Missing required field Resource")
    res = _strings(raw["NotResource" if not_resource else "Resource"], "Policy has invalid resource")
    if resource_policy:
        for r in res:
            _check_bucket_resource(r, bucket)
        if not not_action and not not_resource:
            _check_actions_apply(acts, res)
    else:
        for r in res:
            if r != "*" and not r.startswith("arn:"):
                raise PolicyError("Policy has invalid resource")

    conditions = _conditions(raw.get("Condition"), version)
    return Statement(
        sid=sid, effect=effect, principal=principal, not_principal=not_principal,
        actions=tuple(a.lower() for a in acts), not_action=not_action, resources=tuple(res),
        not_resource=not_resource, conditions=conditions, variables=version == "2012-10-17",
    )  # fmt: skip


def _principals(value: Any, principal_ok: Callable[[str, str], bool] | None) -> PrincipalSet:
    if value == "*":
        return PrincipalSet(everyone=True)
    if not isinstance(value, dict) or not value:
        raise PolicyError("Invalid principal in policy")
    found: dict[str, list[str]] = {t: [] for t in _PRINCIPAL_TYPES}
    everyone = False
    for ptype, raw in value.items():
        if ptype not in _PRINCIPAL_TYPES:
            raise PolicyError("Invalid principal in policy")
        for item in _strings(raw, "Invalid principal in policy"):
            if ptype == "AWS":
                if item == "*":
                    everyone = True
                    continue
                if not (_ACCOUNT.fullmatch(item) or _IAM_ARN.fullmatch(item)):
                    raise PolicyError("Invalid principal in policy")
            elif ptype == "CanonicalUser":
                if not _CANONICAL.fullmatch(item):
                    raise PolicyError("Invalid principal in policy")
                item = item.lower()
            elif item == "*":
                raise PolicyError("Invalid principal in policy")
            if principal_ok is not None and not principal_ok(ptype, item):
                raise PolicyError("Invalid principal in policy")
            found[ptype].append(item)
    return PrincipalSet(everyone, tuple(found["AWS"]), tuple(found["CanonicalUser"]),
                        tuple(found["Service"]), tuple(found["Federated"]))  # fmt: skip


def _check_bucket_resource(resource: str, bucket: str | None) -> None:
    if not resource.startswith(S3_ARN):
        raise PolicyError("Policy has invalid resource")
    rest = resource[len(S3_ARN):]
    name = rest.split("/", 1)[0]
    if not name or (bucket is not None and not wildcard.match(name, bucket)):
        raise PolicyError("Policy has invalid resource")


def resource_kinds(resource: str) -> set[s3actions.ResourceKind]:
    """What an S3 resource pattern can name: the bucket, its objects, or both."""
    rest = resource[len(S3_ARN):] if resource.startswith(S3_ARN) else resource
    if "/" in rest:
        return {s3actions.ResourceKind.OBJECT}
    if wildcard.has_wildcard(rest):
        return {s3actions.ResourceKind.BUCKET, s3actions.ResourceKind.OBJECT}
    return {s3actions.ResourceKind.BUCKET}


def _check_actions_apply(acts: Sequence[str], resources: Sequence[str]) -> None:
    kinds: set[s3actions.ResourceKind] = set()
    for r in resources:
        kinds |= resource_kinds(r)
    for act in acts:
        if not any(kind in kinds for _, kind in s3actions.matching(act)):
            raise PolicyError("Action does not apply to any resource(s) in statement")


def _conditions(raw: Any, version: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise PolicyError("Invalid policy syntax.")
    out = []
    for operator, block in raw.items():
        if not isinstance(block, dict) or not block:
            raise PolicyError("Invalid policy syntax.")
        for key, value in block.items():
            try:
                out.append(compile_condition(operator, key, value,
                                             variables=version == "2012-10-17"))  # fmt: skip
            except ConditionError as e:
                raise PolicyError(str(e)) from None
    return tuple(out)
