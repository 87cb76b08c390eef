"""The ``LifecycleConfiguration`` document: AWS's validation, parsing and rendering (pure).

Theory of operation
-------------------
:func:`parse` turns a PutBucketLifecycleConfiguration body into
:class:`titans3.core.lifecycle.Rule` values (stored as JSON), refusing what
AWS refuses, with its codes:

* 1..1,000 ``Rule`` elements, each with a unique ``ID`` of at most 255
  characters (generated when absent, as AWS does), ``Status`` ``Enabled`` or
  ``Disabled``, exactly one of ``Filter`` or the legacy top-level ``Prefix``;
* a ``Filter`` holds one of ``Prefix``, ``Tag``, ``ObjectSizeGreaterThan``,
  ``ObjectSizeLessThan`` or ``And`` (which combines a prefix, tags and sizes);
  an empty ``Filter`` matches everything;
* at least one action: ``Expiration`` (exactly one of ``Days`` > 0, ``Date`` at
  midnight UTC, ``ExpiredObjectDeleteMarker`` -- the marker flag not with a
  tag filter), ``NoncurrentVersionExpiration`` (``NoncurrentDays`` > 0,
  ``NewerNoncurrentVersions`` 1..100), ``AbortIncompleteMultipartUpload``
  (``DaysAfterInitiation`` > 0; not with tag or size filters);
* ``Transition`` (one of ``Days`` >= 0 or ``Date``, and a ``StorageClass``)
  and ``NoncurrentVersionTransition`` (``NoncurrentDays`` >= 0 and a
  ``StorageClass``): the class must be one the operator mapped to an
  erasure scheme (``storage_classes``; else ``InvalidStorageClass``) and not
  ``STANDARD``.  AWS's 30-day minimum for the IA classes is not enforced:
  here a class is only a scheme, and there is no minimum-duration charge.

Shape errors are ``MalformedXML``; values out of range ``InvalidArgument``;
``InvalidRequest`` for combinations AWS forbids.
"""

from __future__ import annotations

import datetime as dt
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Collection
from typing import Any

from titans3.core import lifecycle as lc
from titans3.core import storageclass
from titans3.core.errors import (
    InvalidArgument,
    InvalidRequest,
    InvalidStorageClass,
    MalformedXML,
    S3Error,
)
from titans3.core.lifecycle import NS, Rule, load
from titans3.objects.api import ObjectInfo
from titans3.s3.context import Reply, S3Context
from titans3.s3.encryption_config import children, text
from titans3.s3.xml import S3_NS, escape, parse_document

NAME = "lifecycle"
MAX_BODY = 1 << 20
MAX_RULES = 1000

NoSuchLifecycleConfiguration = type("NoSuchLifecycleConfiguration", (S3Error,), {
    "code": "NoSuchLifecycleConfiguration", "status": 404,
    "default_message": "The lifecycle configuration does not exist"})


def _int(el: ET.Element | None, name: str, low: int = 1, high: int = 2**31 - 1) -> int:
    raw = text(el) or ""
    if not raw.lstrip("-").isdigit():
        raise MalformedXML()
    value = int(raw)
    if not low <= value <= high:
        raise InvalidArgument(f"'{name}' for {name} action must be a positive integer"
                              if low == 1 else f"{name} is out of range", ArgumentName=name,
                              ArgumentValue=raw)
    return value


def _tag(el: ET.Element) -> tuple[str, str]:
    f = children(el, {"Key", "Value"})
    if "Key" not in f:
        raise MalformedXML()
    return text(f["Key"]) or "", (f["Value"].text or "") if "Value" in f else ""


def _filter(el: ET.Element, out: dict[str, Any]) -> None:
    kids = list(el)
    if not kids:
        return
    if len(kids) != 1:
        raise MalformedXML()
    one = kids[0]
    if one.tag == "Prefix":
        out["prefix"] = one.text or ""
    elif one.tag == "Tag":
        k, v = _tag(one)
        out["tags"] = {k: v}
    elif one.tag == "ObjectSizeGreaterThan":
        out["size_gt"] = _int(one, "ObjectSizeGreaterThan", 0)
    elif one.tag == "ObjectSizeLessThan":
        out["size_lt"] = _int(one, "ObjectSizeLessThan", 1)
    elif one.tag == "And":
        tags: dict[str, str] = {}
        for kid in one:
            if kid.tag == "Prefix" and "prefix" not in out:
                out["prefix"] = kid.text or ""
            elif kid.tag == "Tag":
                k, v = _tag(kid)
                if k in tags:
                    raise InvalidRequest("Duplicate Tag Keys are not allowed.")
                tags[k] = v
            elif kid.tag == "ObjectSizeGreaterThan" and "size_gt" not in out:
                out["size_gt"] = _int(kid, "ObjectSizeGreaterThan", 0)
            elif kid.tag == "ObjectSizeLessThan" and "size_lt" not in out:
                out["size_lt"] = _int(kid, "ObjectSizeLessThan", 1)
            else:
                raise MalformedXML()
        if tags:
            out["tags"] = tags
    else:
        raise MalformedXML()
    gt, lt = out.get("size_gt"), out.get("size_lt")
    if gt is not None and lt is not None and gt >= lt:
        raise InvalidArgument("ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
                              ArgumentName="ObjectSizeGreaterThan")


def _date(raw: str) -> int:
    try:
        when = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument("Invalid date in the lifecycle configuration.", ArgumentName="Date",
                              ArgumentValue=raw) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    when = when.astimezone(dt.UTC)
    if (when.hour, when.minute, when.second, when.microsecond) != (0, 0, 0, 0):
        raise InvalidArgument("'Date' must be at midnight GMT", ArgumentName="Date", ArgumentValue=raw)
    return int(when.timestamp()) * NS


def _class(el: ET.Element | None, mapped: Collection[str] | None) -> str:
    name = text(el) or ""
    if name not in storageclass.AWS_CLASSES or name == storageclass.STANDARD:
        raise InvalidRequest("The storage class you specified is not valid",
                             ArgumentName="StorageClass", ArgumentValue=name) if name else MalformedXML()
    if mapped is not None and name not in mapped:
        raise InvalidStorageClass(StorageClassRequested=name)
    return name


def _rule(el: ET.Element, mapped: Collection[str] | None = None) -> Rule:
    # Transitions repeat (one per storage class step); every other element is single.
    moves = [kid for kid in el if kid.tag in ("Transition", "NoncurrentVersionTransition")]
    for kid in moves:
        el.remove(kid)
    f = children(el, {"ID", "Status", "Filter", "Prefix", "Expiration",
                      "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload",
                      "Transition", "NoncurrentVersionTransition"})
    rid = text(f.get("ID")) or secrets.token_urlsafe(12)
    if len(rid) > 255:
        raise InvalidArgument("ID length should not exceed allowed limit of 255", ArgumentName="ID")
    status = text(f.get("Status"))
    if status not in ("Enabled", "Disabled"):
        raise MalformedXML()
    out: dict[str, Any] = {"id": rid, "enabled": status == "Enabled"}
    if "Filter" in f and "Prefix" in f:
        raise MalformedXML()
    if "Filter" in f:
        _filter(f["Filter"], out)
    elif "Prefix" in f:
        out["prefix"] = f["Prefix"].text or ""
    actions = 0
    if "Expiration" in f:
        e = children(f["Expiration"], {"Days", "Date", "ExpiredObjectDeleteMarker"})
        if len(e) != 1:
            raise MalformedXML()
        if "Days" in e:
            out["expiration_days"] = _int(e["Days"], "Days")
        elif "Date" in e:
            out["expiration_date_ns"] = _date(text(e["Date"]) or "")
        else:
            flag = text(e["ExpiredObjectDeleteMarker"])
            if flag not in ("true", "false"):
                raise MalformedXML()
            if out.get("tags"):
                raise InvalidRequest("ExpiredObjectDeleteMarker cannot be specified with tags.")
            out["expired_delete_marker"] = flag == "true"
        actions += 1
    if "NoncurrentVersionExpiration" in f:
        n = children(f["NoncurrentVersionExpiration"], {"NoncurrentDays", "NewerNoncurrentVersions"})
        if "NoncurrentDays" not in n:
            raise MalformedXML()
        out["noncurrent_days"] = _int(n["NoncurrentDays"], "NoncurrentDays")
        if "NewerNoncurrentVersions" in n:
            out["newer_noncurrent"] = _int(n["NewerNoncurrentVersions"], "NewerNoncurrentVersions",
                                           1, 100)
        actions += 1
    if "AbortIncompleteMultipartUpload" in f:
        a = children(f["AbortIncompleteMultipartUpload"], {"DaysAfterInitiation"})
        if "DaysAfterInitiation" not in a:
            raise MalformedXML()
        if out.get("tags") or out.get("size_gt") is not None or out.get("size_lt") is not None:
            raise InvalidRequest("AbortIncompleteMultipartUpload cannot be specified with Tags.")
        out["abort_days"] = _int(a["DaysAfterInitiation"], "DaysAfterInitiation")
        actions += 1
    for kid in moves:
        if kid.tag == "Transition":
            t = children(kid, {"Days", "Date", "StorageClass"})
            if ("Days" in t) == ("Date" in t) or "StorageClass" not in t:
                raise MalformedXML()
            days = _int(t["Days"], "Days", 0) if "Days" in t else None
            date = _date(text(t["Date"]) or "") if "Date" in t else None
            out.setdefault("transitions", []).append([days, date, _class(t["StorageClass"], mapped)])
        else:
            t = children(kid, {"NoncurrentDays", "StorageClass", "NewerNoncurrentVersions"})
            if "NoncurrentDays" not in t or "StorageClass" not in t:
                raise MalformedXML()
            out.setdefault("noncurrent_transitions", []).append(
                [_int(t["NoncurrentDays"], "NoncurrentDays", 0), _class(t["StorageClass"], mapped)])
        actions += 1
    for name in ("transitions", "noncurrent_transitions"):
        classes = [t[-1] for t in out.get(name, [])]
        if len(set(classes)) != len(classes):
            raise InvalidRequest("'StorageClass' must be different for each transition of a rule")
    if not actions:
        raise InvalidRequest("At least one action needs to be specified in a rule")
    return Rule(**out)


def parse(data: bytes, mapped: Collection[str] | None = None) -> list[Rule]:
    """``mapped``: the storage classes transitions may name (None: any valid one)."""
    root = parse_document(data)
    if root.tag != "LifecycleConfiguration":
        raise MalformedXML()
    rules = []
    for el in root:
        if el.tag != "Rule":
            raise MalformedXML()
        rules.append(_rule(el, mapped))
    if not rules or len(rules) > MAX_RULES:
        raise MalformedXML()
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise InvalidArgument("Rule ID must be unique. Found same ID for more than one rule",
                              ArgumentName="ID")
    return rules


def _filter_xml(r: Rule) -> str:
    parts = []
    if r.prefix or not (r.tags or r.size_gt is not None or r.size_lt is not None):
        parts.append(f"<Prefix>{escape(r.prefix)}</Prefix>")
    for k, v in r.tags.items():
        parts.append(f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>")
    if r.size_gt is not None:
        parts.append(f"<ObjectSizeGreaterThan>{r.size_gt}</ObjectSizeGreaterThan>")
    if r.size_lt is not None:
        parts.append(f"<ObjectSizeLessThan>{r.size_lt}</ObjectSizeLessThan>")
    inner = "".join(parts)
    return f"<Filter><And>{inner}</And></Filter>" if len(parts) > 1 else f"<Filter>{inner}</Filter>"


def render(raw: bytes) -> bytes:
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<LifecycleConfiguration xmlns="{S3_NS}">']
    for r in load(raw):
        out.append(f"<Rule><ID>{escape(r.id)}</ID>{_filter_xml(r)}"
                   f"<Status>{'Enabled' if r.enabled else 'Disabled'}</Status>")
        if r.expiration_days is not None:
            out.append(f"<Expiration><Days>{r.expiration_days}</Days></Expiration>")
        elif r.expiration_date_ns is not None:
            when = dt.datetime.fromtimestamp(r.expiration_date_ns / NS, dt.UTC)
            out.append(f"<Expiration><Date>{when.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</Date></Expiration>")
        elif r.expired_delete_marker:
            out.append("<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
                       "</Expiration>")
        if r.noncurrent_days is not None:
            newer = (f"<NewerNoncurrentVersions>{r.newer_noncurrent}</NewerNoncurrentVersions>"
                     if r.newer_noncurrent else "")
            out.append(f"<NoncurrentVersionExpiration><NoncurrentDays>{r.noncurrent_days}"
                       f"</NoncurrentDays>{newer}</NoncurrentVersionExpiration>")
        for days, date_ns, cls in r.transitions:
            when = (f"<Days>{days}</Days>" if days is not None else
                    "<Date>" + dt.datetime.fromtimestamp((date_ns or 0) / NS, dt.UTC)
                    .strftime('%Y-%m-%dT%H:%M:%S.000Z') + "</Date>")
            out.append(f"<Transition>{when}<StorageClass>{cls}</StorageClass></Transition>")
        for days, cls in r.noncurrent_transitions:
            out.append(f"<NoncurrentVersionTransition><NoncurrentDays>{days}</NoncurrentDays>"
                       f"<StorageClass>{cls}</StorageClass></NoncurrentVersionTransition>")
        if r.abort_days is not None:
            out.append(f"<AbortIncompleteMultipartUpload><DaysAfterInitiation>{r.abort_days}"
                       "</DaysAfterInitiation></AbortIncompleteMultipartUpload>")
        out.append("</Rule>")
    out.append("</LifecycleConfiguration>")
    return "".join(out).encode()


async def expiration_header(reply: Reply, ctx: S3Context, info: ObjectInfo) -> None:
    """``x-amz-expiration`` of the current version, as AWS computes it (core/lifecycle.py)."""
    if not info.is_latest or info.delete_marker:
        return
    raw = await ctx.store.get_bucket_config(ctx.bucket, NAME)
    if raw is None:
        return
    hit = lc.expiration(lc.load(raw), info.key, info.tags, info.size, info.mtime_ns,
                        ctx.settings.lifecycle_day)
    if hit is not None:
        reply.header("x-amz-expiration", lc.header_value(*hit))
