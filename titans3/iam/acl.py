"""Access control lists, canned ACLs and S3 Object Ownership (pure).

Theory of operation
-------------------
An :class:`ACL` is an owner (canonical id) and up to 100 grants.  A grant
names a grantee -- a canonical user id, or one of S3's groups (AllUsers,
AuthenticatedUsers, LogDelivery) -- and one permission: READ, WRITE,
READ_ACP, WRITE_ACP or FULL_CONTROL.  Grants by e-mail address are resolved
to canonical ids when the ACL is set (AWS stores and returns the canonical
user), so stored ACLs only hold ids and group URIs.

What each permission allows, as AWS's ACL overview tables it:

=============  ====================================  ===================================
permission     on a bucket                           on an object
=============  ====================================  ===================================
READ           ListBucket, ListBucketVersions,       GetObject, GetObjectVersion,
               ListBucketMultipartUploads            GetObjectTorrent
WRITE          PutObject, DeleteObject(Version)       --
               on any object in the bucket
READ_ACP       GetBucketAcl                          GetObjectAcl, GetObjectVersionAcl
WRITE_ACP      PutBucketAcl                          PutObjectAcl, PutObjectVersionAcl
FULL_CONTROL   all of the above                      all of the above
=============  ====================================  ===================================

Object Ownership (``PutBucketOwnershipControls``) decides who owns a new
object and whether ACLs count at all: ``BucketOwnerEnforced`` (the default
for new buckets, as on AWS since April 2023) disables ACLs -- the bucket owner
owns every object and only an ACL that grants nothing but FULL_CONTROL to
the bucket owner may still be sent; ``BucketOwnerPreferred`` gives objects
written with ``bucket-owner-full-control`` to the bucket owner;
``ObjectWriter`` leaves them with the writer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import msgpack

__all__ = [
    "ACL", "ALL_USERS", "AUTHENTICATED_USERS", "CANNED", "LOG_DELIVERY", "OWNERSHIP",
    "PERMISSIONS", "AclError", "Grant", "canned", "from_grant_specs", "object_owner",
    "parse_grant_header", "permission_for",
]  # fmt: skip

READ, WRITE, READ_ACP, WRITE_ACP, FULL_CONTROL = "READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"
PERMISSIONS = (FULL_CONTROL, WRITE, WRITE_ACP, READ, READ_ACP)
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = frozenset({ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY})
CANNED = ("private", "public-read", "public-read-write", "aws-exec-read", "authenticated-read",
          "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write")  # fmt: skip
OWNERSHIP = ("BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter")
ENFORCED = "BucketOwnerEnforced"
MAX_GRANTS = 100
GRANT_HEADERS = {
    "x-amz-grant-read": READ, "x-amz-grant-write": WRITE, "x-amz-grant-read-acp": READ_ACP,
    "x-amz-grant-write-acp": WRITE_ACP, "x-amz-grant-full-control": FULL_CONTROL,
}  # fmt: skip


class AclError(ValueError):
    """An ACL S3 refuses: ``code`` is the S3 error code, ``message`` AWS's text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Grant:
    kind: str  # "CanonicalUser" | "Group"
    id: str  # canonical id or group URI
    permission: str


@dataclass(frozen=True, slots=True)
class ACL:
    owner: str  # canonical id
    grants: tuple[Grant, ...]

    def pack(self) -> bytes:
        return msgpack.packb({"o": self.owner, "g": [[g.kind, g.id, g.permission] for g in self.grants]})

    @classmethod
    def unpack(cls, raw: bytes) -> ACL:
        d = msgpack.unpackb(raw)
        return cls(d["o"], tuple(Grant(*g) for g in d["g"]))

    def allows(self, who: str | None, permission: str, *, ignore_public: bool = False) -> bool:
        """Whether a grant gives ``permission`` to canonical id ``who`` (None: anonymous)."""
        for g in self.grants:
            if g.permission not in (permission, FULL_CONTROL):
                continue
            if g.kind == "Group":
                if ignore_public:
                    continue
                if g.id == ALL_USERS or (g.id == AUTHENTICATED_USERS and who is not None):
                    return True
            elif who is not None and g.id == who:
                return True
        return False

    @property
    def public(self) -> bool:
        """AWS's "public" ACL: a grant to AllUsers or AuthenticatedUsers."""
        return any(g.kind == "Group" and g.id in (ALL_USERS, AUTHENTICATED_USERS) for g in self.grants)

    def only_full_control_to(self, owner: str) -> bool:
        """What BucketOwnerEnforced still accepts: nothing but FULL_CONTROL to ``owner``."""
        return all(g.kind == "CanonicalUser" and g.id == owner and g.permission == FULL_CONTROL
                   for g in self.grants)  # fmt: skip


def private(owner: str) -> ACL:
    return ACL(owner, (Grant("CanonicalUser", owner, FULL_CONTROL),))


def canned(name: str, *, owner: str, bucket_owner: str | None = None) -> ACL:
    """The ACL a canned name stands for (``bucket_owner``: for the bucket-owner-* ones)."""
    if name not in CANNED:
        raise AclError("InvalidArgument", f"Argument x-amz-acl must be one of {', '.join(CANNED)}")
    grants = [Grant("CanonicalUser", owner, FULL_CONTROL)]
    if name == "public-read":
        grants.append(Grant("Group", ALL_USERS, READ))
    elif name == "public-read-write":
        grants += [Grant("Group", ALL_USERS, READ), Grant("Group", ALL_USERS, WRITE)]
    elif name == "authenticated-read":
        grants.append(Grant("Group", AUTHENTICATED_USERS, READ))
    elif name == "log-delivery-write":
        grants += [Grant("Group", LOG_DELIVERY, WRITE), Grant("Group", LOG_DELIVERY, READ_ACP)]
    elif name in ("bucket-owner-read", "bucket-owner-full-control") and bucket_owner and bucket_owner != owner:
        perm = READ if name == "bucket-owner-read" else FULL_CONTROL
        grants.append(Grant("CanonicalUser", bucket_owner, perm))
    return ACL(owner, tuple(grants))


_SPEC = re.compile(r'\s*(id|emailAddress|uri)\s*=\s*(?:"([^"]*)"|([^,\s]+))\s*(?:,|$)', re.IGNORECASE)


def parse_grant_header(value: str) -> list[tuple[str, str]]:
    """``id="...", emailAddress="...", uri="..."`` -> ``[(type, value), ...]``."""
    out: list[tuple[str, str]] = []
    pos = 0
    value = value.strip()
    while pos < len(value):
        m = _SPEC.match(value, pos)
        if m is None or m.end() == pos:
            raise AclError("InvalidArgument", f"Invalid grant header value: {value}")
        kind = {"id": "id", "emailaddress": "emailAddress", "uri": "uri"}[m.group(1).lower()]
        out.append((kind, m.group(2) if m.group(2) is not None else m.group(3)))
        pos = m.end()
    if not out:
        raise AclError("InvalidArgument", "Invalid grant header: no grantee")
    return out


def from_grant_specs(
    owner: str,
    specs: Iterable[tuple[str, str, str]],
    *,
    resolve_email: Callable[[str], str | None],
    known_id: Callable[[str], bool] = lambda _id: True,
) -> ACL:
    """An ACL from ``(grantee type, value, permission)`` triples (headers or XML).

    Types: ``id``/``CanonicalUser``, ``emailAddress``/``AmazonCustomerByEmail``,
    ``uri``/``Group``.  Unknown e-mail addresses are
    ``UnresolvableGrantByEmailAddress``, unknown groups ``InvalidArgument``.
    """
    grants: list[Grant] = []
    for kind, value, permission in specs:
        if permission not in PERMISSIONS:
            raise AclError("MalformedACLError",
                           "The XML you provided was not well-formed or did not validate against our published schema")  # fmt: skip
        if kind in ("id", "CanonicalUser"):
            if not known_id(value):
                raise AclError("InvalidArgument", "Invalid id")
            grants.append(Grant("CanonicalUser", value, permission))
        elif kind in ("emailAddress", "AmazonCustomerByEmail"):
            cid = resolve_email(value)
            if cid is None:
                raise AclError("UnresolvableGrantByEmailAddress",
                               "The e-mail address you provided does not match any account on record.")  # fmt: skip
            grants.append(Grant("CanonicalUser", cid, permission))
        elif kind in ("uri", "Group"):
            if value not in GROUPS:
                raise AclError("InvalidArgument", "Invalid group uri")
            grants.append(Grant("Group", value, permission))
        else:
            raise AclError("MalformedACLError", "Unknown grantee type")
    if len(grants) > MAX_GRANTS:
        raise AclError("MalformedACLError", f"An ACL may hold at most {MAX_GRANTS} grants")
    return ACL(owner, tuple(grants))


def acl_from_headers(
    headers: Mapping[str, str], *, owner: str, bucket_owner: str | None,
    resolve_email: Callable[[str], str | None], known_id: Callable[[str], bool] = lambda _id: True,
) -> ACL | None:  # fmt: skip
    """The ACL a request's ``x-amz-acl`` or ``x-amz-grant-*`` headers ask for; None if neither.

    Both at once is ``InvalidRequest``, as AWS answers.
    """
    cannedname = headers.get("x-amz-acl")
    grant_headers = [(h, headers[h]) for h in GRANT_HEADERS if h in headers]
    if cannedname is not None and grant_headers:
        raise AclError("InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed")
    if cannedname is not None:
        return canned(cannedname.strip(), owner=owner, bucket_owner=bucket_owner)
    if not grant_headers:
        return None
    specs = [(kind, value, GRANT_HEADERS[h]) for h, v in grant_headers for kind, value in parse_grant_header(v)]
    return from_grant_specs(owner, specs, resolve_email=resolve_email, known_id=known_id)


# ------------------------------------------------------------ permissions
_BUCKET_ACTIONS = {
    "s3:listbucket": READ, "s3:listbucketversions": READ, "s3:listbucketmultipartuploads": READ,
    "s3:getbucketacl": READ_ACP, "s3:putbucketacl": WRITE_ACP,
    # WRITE on the bucket is about its objects: create, overwrite, delete.
    "s3:putobject": WRITE, "s3:deleteobject": WRITE, "s3:deleteobjectversion": WRITE,
    "s3:abortmultipartupload": WRITE, "s3:listmultipartuploadparts": WRITE,
}  # fmt: skip
_OBJECT_ACTIONS = {
    "s3:getobject": READ, "s3:getobjectversion": READ, "s3:getobjecttorrent": READ,
    "s3:getobjectacl": READ_ACP, "s3:getobjectversionacl": READ_ACP,
    "s3:putobjectacl": WRITE_ACP, "s3:putobjectversionacl": WRITE_ACP,
}  # fmt: skip


def permission_for(action: str, *, on_object: bool) -> str | None:
    """The ACL permission that allows ``action`` on a bucket's or an object's ACL, if any."""
    table = _OBJECT_ACTIONS if on_object else _BUCKET_ACTIONS
    return table.get(action.lower())


def object_owner(ownership: str, *, writer: str, bucket_owner: str, acl_header: str | None) -> str:
    """Who owns an object written by ``writer`` under the bucket's Object Ownership."""
    if ownership == ENFORCED:
        return bucket_owner
    if ownership == "BucketOwnerPreferred" and acl_header == "bucket-owner-full-control":
        return bucket_owner
    return writer
