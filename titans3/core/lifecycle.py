"""Lifecycle rules: the stored model and when each action is due (pure).

Theory of operation
-------------------
The S3 front validates a ``LifecycleConfiguration`` (``titans3.s3.lifecycle_config``)
into :class:`Rule` values and stores them as JSON in the bucket record
(:func:`dump` / :func:`load`); the lifecycle worker (``workers/lifecycle.py``)
and the ``x-amz-expiration`` header read them back through here, so the
front, the worker and the header agree on every date.

Dates, as AWS computes them: an action of ``N`` days is due at the object's
time (its creation; for noncurrent versions the time it became noncurrent,
i.e. its successor's creation) plus ``N`` days, *rounded up to the next
midnight UTC*.  With a shortened day (``lifecycle_day`` below 86,400 s, the
equivalent of Ceph RGW's ``rgw_lc_debug_interval`` for tests) a day is that
many seconds and nothing is rounded.  ``Date`` expirations fall at that
instant (AWS requires midnight UTC).

Transitions (``Transition``, ``NoncurrentVersionTransition``) are due by
the same rule and move a version to another storage class -- another
erasure scheme of this cluster (``objects/transition.py``).

Filters: prefix, tags (all must match), object size bounds (strict
``>``/``<`` as AWS), combined with ``And``.  Disabled rules never fire.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

DAY = 86_400
NS = 1_000_000_000
NAME = "lifecycle"  # the bucket configuration document


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    enabled: bool = True
    prefix: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    size_gt: int | None = None
    size_lt: int | None = None
    expiration_days: int | None = None
    expiration_date_ns: int | None = None
    expired_delete_marker: bool = False
    noncurrent_days: int | None = None
    newer_noncurrent: int | None = None  # keep this many newest noncurrent versions
    abort_days: int | None = None  # AbortIncompleteMultipartUpload DaysAfterInitiation
    # Transition (to another storage class = EC scheme, objects/transition.py)
    # each [days or None, date ns or None, storage class]
    transitions: list[list[Any]] = field(default_factory=list)
    # each [noncurrent days, storage class]
    noncurrent_transitions: list[list[Any]] = field(default_factory=list)

    def matches(self, key: str, tags: Mapping[str, str] | None = None, size: int | None = None) -> bool:
        if not self.enabled or not key.startswith(self.prefix):
            return False
        if self.tags and any((tags or {}).get(k) != v for k, v in self.tags.items()):
            return False
        if size is not None:
            if self.size_gt is not None and not size > self.size_gt:
                return False
            if self.size_lt is not None and not size < self.size_lt:
                return False
        return True


def dump(rules: Iterable[Rule]) -> bytes:
    return json.dumps([asdict(r) for r in rules], separators=(",", ":")).encode()


def load(raw: bytes | None) -> list[Rule]:
    if not raw:
        return []
    return [Rule(**d) for d in json.loads(raw)]


def due_ns(start_ns: int, days: int, day_seconds: float = DAY) -> int:
    """When an action of ``days`` days counted from ``start_ns`` is due (module doc)."""
    if day_seconds >= DAY:
        at = start_ns + days * DAY * NS
        midnight = DAY * NS
        return -(-at // midnight) * midnight  # the next midnight UTC (or this one, exactly)
    return start_ns + int(days * day_seconds * NS)


def expiration_of(rule: Rule, mtime_ns: int, day_seconds: float = DAY) -> int | None:
    """When ``rule`` expires a current version created at ``mtime_ns`` (None: it does not)."""
    if rule.expiration_days is not None:
        return due_ns(mtime_ns, rule.expiration_days, day_seconds)
    return rule.expiration_date_ns


def transitions_of(rule: Rule, mtime_ns: int, day_seconds: float = DAY) -> list[tuple[int, str]]:
    """``(due ns, class)`` of each Transition of ``rule`` for a current version
    created at ``mtime_ns``."""
    return [(due_ns(mtime_ns, days, day_seconds) if days is not None else date_ns, cls)
            for days, date_ns, cls in rule.transitions]


def noncurrent_transitions_of(rule: Rule, since_ns: int,
                              day_seconds: float = DAY) -> list[tuple[int, str]]:
    """``(due ns, class)`` of each NoncurrentVersionTransition, counted from
    when the version became noncurrent."""
    return [(due_ns(since_ns, days, day_seconds), cls) for days, cls in rule.noncurrent_transitions]


def expiration(rules: Iterable[Rule], key: str, tags: Mapping[str, str] | None, size: int,
               mtime_ns: int, day_seconds: float = DAY) -> tuple[int, str] | None:
    """``(expiry ns, rule id)``: the earliest Expiration that applies (``x-amz-expiration``)."""
    best: tuple[int, str] | None = None
    for r in rules:
        if not r.matches(key, tags, size):
            continue
        at = expiration_of(r, mtime_ns, day_seconds)
        if at is not None and (best is None or at < best[0]):
            best = (at, r.id)
    return best


def header_value(expiry_ns: int, rule_id: str) -> str:
    """``expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", rule-id="..."`` (AWS's format)."""
    import email.utils

    date = email.utils.formatdate(expiry_ns // NS, usegmt=True)
    rid = rule_id.replace("\\", "\\\\").replace('"', '\\"')
    return f'expiry-date="{date}", rule-id="{rid}"'


def uses_tags(rules: Iterable[Rule]) -> bool:
    return any(r.tags for r in rules)


def summary(rules: Iterable[Rule]) -> dict[str, Any]:
    rules = list(rules)
    return {"rules": len(rules), "enabled": sum(r.enabled for r in rules)}
