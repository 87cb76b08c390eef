"""Block Public Access and AWS's meaning of "public" (pure).

Theory of operation
-------------------
Four independent switches, each settable on a bucket and on the account;
what applies to a request is the most restrictive combination of the two
(a switch is on if it is on at either level):

* ``BlockPublicAcls`` -- PutBucketAcl, PutObjectAcl, PutObject and
  CreateBucket carrying a *public* ACL are refused (403 AccessDenied);
* ``IgnorePublicAcls`` -- public grants (AllUsers, AuthenticatedUsers) are
  ignored when deciding requests;
* ``BlockPublicPolicy`` -- PutBucketPolicy with a *public* policy is refused;
* ``RestrictPublicBuckets`` -- while a bucket's policy is public, it grants
  nothing to anonymous requesters (AWS: only principals of the bucket owner's
  account and AWS services may use it; every TitanS3 user is in the one
  account, so it is the anonymous requester who loses access).

"Public", as AWS defines it ("The meaning of public"): an ACL is public when
it grants anything to AllUsers or AuthenticatedUsers.  A policy is public
when some ``Allow`` statement's principal is everyone (``*``) and none of its
conditions pins the request to fixed values (no wildcard, no policy variable)
of ``aws:SourceIp`` (no broader than /8 for IPv4, /32 for IPv6),
``aws:SourceArn``, ``aws:SourceVpc``, ``aws:SourceVpce``, ``aws:SourceOwner``,
``aws:SourceAccount``, ``aws:userid`` (outside ``AROLEID:*``),
``s3:x-amz-server-side-encryption-aws-kms-key-id``, ``s3:DataAccessPointArn``
or ``s3:DataAccessPointAccount``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from titans3.iam import wildcard
from titans3.iam.conditions import Condition
from titans3.iam.policy import Policy

__all__ = ["ALL_BLOCKED", "NONE_BLOCKED", "PublicAccessBlock", "policy_is_public"]

XML_NAMES = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@dataclass(frozen=True, slots=True)
class PublicAccessBlock:
    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False

    def __or__(self, other: PublicAccessBlock) -> PublicAccessBlock:
        if not other.any:
            return self
        return PublicAccessBlock(self.block_public_acls or other.block_public_acls,
                                 self.ignore_public_acls or other.ignore_public_acls,
                                 self.block_public_policy or other.block_public_policy,
                                 self.restrict_public_buckets or other.restrict_public_buckets)  # fmt: skip

    def to_dict(self) -> dict[str, bool]:
        return dict(zip(XML_NAMES, (getattr(self, f.name) for f in fields(self)), strict=True))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublicAccessBlock:
        return cls(*(bool(d.get(n, False)) for n in XML_NAMES))

    @property
    def any(self) -> bool:
        return (self.block_public_acls or self.ignore_public_acls or self.block_public_policy
                or self.restrict_public_buckets)  # fmt: skip


ALL_BLOCKED = PublicAccessBlock(True, True, True, True)
NONE_BLOCKED = PublicAccessBlock()

_FIXING_KEYS = frozenset({
    "aws:sourceip", "aws:sourcearn", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceowner",
    "aws:sourceaccount", "aws:userid", "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:dataaccesspointarn", "s3:dataaccesspointaccount",
})  # fmt: skip
_FIXING_KINDS = frozenset({"string", "string_ci", "string_like", "arn", "ip"})


def _narrow(network: Any) -> bool:
    if network.version == 4:
        return network.prefixlen >= 8 or network.is_private
    return network.prefixlen >= 32 or network.is_private


def _restricts(c: Condition) -> bool:
    """A condition that pins the statement to fixed values of a key AWS accepts."""
    if c.key not in _FIXING_KEYS or c.kind not in _FIXING_KINDS or c.negated or c.if_exists:
        return False
    if c.qualifier == "forallvalues" or c.variables:
        return False
    if c.kind == "ip":
        return all(_narrow(n) for n in c.parsed)
    if any(wildcard.has_wildcard(v) for v in c.raw):
        return False
    if c.key == "aws:userid":
        return not any(v.startswith("AROLEID:") for v in c.raw)
    return True


def policy_is_public(policy: Policy | None) -> bool:
    if policy is None:
        return False
    for st in policy.statements:
        if not st.allows or st.principal is None or not st.principal.everyone:
            continue
        if not any(_restricts(c) for c in st.conditions):
            return True
    return False


