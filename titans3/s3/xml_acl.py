"""The XML documents of S3's access operations: ACLs, ownership controls,
Block Public Access and policy status (pure).

``AccessControlPolicy`` is read and written as AWS documents it: an
``Owner``, then ``AccessControlList`` of ``Grant`` elements whose ``Grantee``
carries ``xsi:type`` -- ``CanonicalUser`` (``ID``, ``DisplayName``),
``AmazonCustomerByEmail`` (``EmailAddress``) or ``Group`` (``URI``) -- and a
``Permission``.  Parsing returns ``(owner id or None, [(type, value,
permission)])`` for :func:`titans3.iam.acl.from_grant_specs`; anything else
is ``MalformedACLError`` (ACL bodies) or ``MalformedXML``.
"""

from __future__ import annotations

from collections.abc import Callable

from titans3.core.errors import MalformedACLError, MalformedXML
from titans3.iam.acl import ACL, OWNERSHIP
from titans3.iam.publicaccess import XML_NAMES, PublicAccessBlock
from titans3.s3.xml import S3_NS, escape, parse_document

__all__ = [
    "parse_acl", "parse_ownership_controls", "parse_public_access_block", "render_acl",
    "render_ownership_controls", "render_policy_status", "render_public_access_block",
]  # fmt: skip

XSI = "http://www.w3.org/2001/XMLSchema-instance"
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def render_acl(acl: ACL, display_name: Callable[[str], str]) -> bytes:
    parts = [_HEAD, f'<AccessControlPolicy xmlns="{S3_NS}"><Owner><ID>{escape(acl.owner)}</ID>',
             f"<DisplayName>{escape(display_name(acl.owner))}</DisplayName></Owner><AccessControlList>"]  # fmt: skip
    for g in acl.grants:
        parts.append(f'<Grant><Grantee xmlns:xsi="{XSI}" xsi:type="{g.kind}">')
        if g.kind == "Group":
            parts.append(f"<URI>{escape(g.id)}</URI>")
        else:
            parts.append(f"<ID>{escape(g.id)}</ID><DisplayName>{escape(display_name(g.id))}</DisplayName>")
        parts.append(f"</Grantee><Permission>{g.permission}</Permission></Grant>")
    parts.append("</AccessControlList></AccessControlPolicy>")
    return "".join(parts).encode("utf-8")


def parse_acl(data: bytes) -> tuple[str | None, list[tuple[str, str, str]]]:
    try:
        root = parse_document(data, attributes=True)
    except MalformedXML:
        raise MalformedACLError() from None
    if root.tag != "AccessControlPolicy":
        raise MalformedACLError()
    owner: str | None = None
    specs: list[tuple[str, str, str]] = []
    for child in root:
        if child.tag == "Owner":
            owner = (child.findtext("ID") or "").strip() or None
        elif child.tag == "AccessControlList":
            for grant in child:
                if grant.tag != "Grant":
                    raise MalformedACLError()
                grantee = grant.find("Grantee")
                permission = (grant.findtext("Permission") or "").strip()
                if grantee is None or not permission:
                    raise MalformedACLError()
                kind = grantee.get("type", "")
                field = {"CanonicalUser": "ID", "AmazonCustomerByEmail": "EmailAddress", "Group": "URI"}.get(kind)
                value = (grantee.findtext(field) or "").strip() if field else ""
                if not value:
                    raise MalformedACLError()
                specs.append((kind, value, permission))
        else:
            raise MalformedACLError()
    return owner, specs


def render_ownership_controls(ownership: str) -> bytes:
    return (f'{_HEAD}<OwnershipControls xmlns="{S3_NS}"><Rule><ObjectOwnership>{ownership}'
            "</ObjectOwnership></Rule></OwnershipControls>").encode()  # fmt: skip


def parse_ownership_controls(data: bytes) -> str:
    root = parse_document(data)
    rules = list(root)
    if root.tag != "OwnershipControls" or len(rules) != 1 or rules[0].tag != "Rule":
        raise MalformedXML()
    value = (rules[0].findtext("ObjectOwnership") or "").strip()
    if value not in OWNERSHIP or len(rules[0]) != 1:
        raise MalformedXML()
    return value


def render_public_access_block(pab: PublicAccessBlock) -> bytes:
    body = "".join(f"<{n}>{'true' if v else 'false'}</{n}>" for n, v in pab.to_dict().items())
    return f'{_HEAD}<PublicAccessBlockConfiguration xmlns="{S3_NS}">{body}</PublicAccessBlockConfiguration>'.encode()


def parse_public_access_block(data: bytes) -> PublicAccessBlock:
    root = parse_document(data)
    if root.tag != "PublicAccessBlockConfiguration":
        raise MalformedXML()
    values: dict[str, bool] = {}
    for child in root:
        text = (child.text or "").strip().lower()
        if child.tag not in XML_NAMES or child.tag in values or text not in ("true", "false") or len(child):
            raise MalformedXML()
        values[child.tag] = text == "true"
    return PublicAccessBlock.from_dict(values)


def render_policy_status(public: bool) -> bytes:
    return (f'{_HEAD}<PolicyStatus xmlns="{S3_NS}"><IsPublic>{"true" if public else "false"}'
            "</IsPublic></PolicyStatus>").encode()  # fmt: skip
