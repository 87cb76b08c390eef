"""The torture suite's oracle: what each key may hold, given what was acknowledged.

Theory of operation
-------------------
Every operation the workload sends ends one of three ways, and the model
records which (:class:`Outcome`):

* ``ACKED``  -- a 2xx answer: the effect happened and must stay;
* ``FAILED`` -- a 4xx answer: the request was refused, nothing happened;
* ``MAYBE``  -- no answer (the daemon was SIGKILLed, the connection broke) or a
  5xx: the effect may or may not have happened.

Keys are owned by one workload thread each and operated on one request at a
time, so per key the model is exact:

* a plain key (:class:`PlainKey`) has a *set* of possible current values.  An
  acknowledged PUT/DELETE/copy makes it exactly one value; a MAYBE adds its
  value to the set (any combination of uncertain writes still leaves one last
  writer, and every candidate is in the set).
* a versioned key (:class:`VersionedKey`) has a history, oldest first, of
  version entries and delete markers; an uncertain one is *optional*, and a
  ``DELETE ?versionId=`` in flight makes its target optional too.

**Observation collapses uncertainty.**  When the checker reads a key, the
value it sees must be one of the possibilities, and from then on it is the
only one: an uncertain write that was invisible must never appear later
(repair must not resurrect a write that did not reach quorum), and one that
was visible must never disappear.  This is what makes "anything lost"
measurable with crashes in the schedule: a value is either acknowledged, or
was seen, or is allowed to be absent -- there is no fourth case.

Nothing here does I/O; ``tests/torture/test_model.py`` pins the rules.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field


class Outcome(enum.Enum):
    ACKED = "acked"
    FAILED = "failed"
    MAYBE = "maybe"


@dataclass(frozen=True, slots=True)
class Value:
    """An object's content as the checker can verify it."""

    sha256: str
    size: int
    etag: str  # without quotes; "" = not known (a copy that got no answer)

    @classmethod
    def of(cls, data: bytes | memoryview) -> Value:
        return cls(hashlib.sha256(data).hexdigest(), len(data), hashlib.md5(data).hexdigest())

    def short(self) -> str:
        return f"{self.size}B:{self.sha256[:10]}"

    def same(self, other: Value) -> bool:
        """Same content; the ETag counts only where both are known."""
        return (self.sha256 == other.sha256 and self.size == other.size
                and (not self.etag or not other.etag or self.etag == other.etag))


ABSENT: Value | None = None  # a plain key with no object


def multipart_etag(part_md5s: Sequence[bytes]) -> str:
    return hashlib.md5(b"".join(part_md5s)).hexdigest() + f"-{len(part_md5s)}"


class Violation(AssertionError):
    """The daemon showed a state no acknowledged history allows."""


# ---------------------------------------------------------------- plain keys
@dataclass
class PlainKey:
    name: str
    possible: list[Value | None] = field(default_factory=lambda: [None])

    @property
    def certain(self) -> bool:
        return len(self.possible) == 1

    @property
    def value(self) -> Value | None:
        """The one value a certain key holds (None: absent)."""
        assert self.certain, f"{self.name} is uncertain: {self.describe()}"
        return self.possible[0]

    def record(self, outcome: Outcome, value: Value | None) -> None:
        """A PUT (value) or DELETE (None) ended with ``outcome``."""
        if outcome is Outcome.ACKED:
            self.possible = [value]
        elif outcome is Outcome.MAYBE and value not in self.possible:
            self.possible.append(value)

    def observe(self, seen: Value | None, how: str) -> None:
        """The checker saw ``seen``; raises Violation unless it is possible, then collapses."""
        if seen is None:
            ok = None in self.possible
        else:
            ok = any(v is not None and v.same(seen) for v in self.possible)
        if not ok:
            raise Violation(f"{self.name}: {how} shows {_show(seen)}, but only "
                            f"{self.describe()} is possible")
        self.possible = [seen]

    def observe_listing(self, size: int, etag: str, how: str) -> None:
        """A listing row (size, ETag) for this key; the content is not known from it."""
        fits = [v for v in self.possible
                if v is not None and v.size == size and (not v.etag or v.etag == etag)]
        if not fits:
            raise Violation(f"{self.name}: {how} lists {size}B/{etag[:10]}, but only "
                            f"{self.describe()} is possible")
        if len(fits) == 1:
            self.possible = [Value(fits[0].sha256, size, etag)]

    def describe(self) -> str:
        return " | ".join(_show(v) for v in self.possible)


def _show(v: Value | None) -> str:
    return "absent" if v is None else v.short()


# ------------------------------------------------------------ versioned keys
@dataclass
class VEntry:
    value: Value | None  # None: a delete marker
    vid: str | None  # None: not known (the request got no answer)
    certain: bool  # the write is known to exist
    gone: str = "no"  # "no" | "yes" (deleted by version id) | "maybe"

    @property
    def optional(self) -> bool:
        return not self.certain or self.gone == "maybe"

    def short(self) -> str:
        what = "marker" if self.value is None else self.value.short()
        flags = "" if not self.optional else "?"
        return f"{(self.vid or '?')[:12]}:{what}{flags}"


@dataclass(frozen=True, slots=True)
class Listed:
    """One row of ListObjectVersions for a key (newest first)."""

    vid: str
    marker: bool
    size: int
    etag: str


@dataclass
class VersionedKey:
    name: str
    history: list[VEntry] = field(default_factory=list)  # oldest first

    def put(self, outcome: Outcome, value: Value | None, vid: str | None) -> None:
        """A PUT (value) or DELETE without version id (None: marker) ended with ``outcome``."""
        if outcome is Outcome.FAILED:
            return
        self.history.append(VEntry(value, vid, certain=outcome is Outcome.ACKED))

    def delete_version(self, vid: str, outcome: Outcome) -> None:
        for e in self.history:
            if e.vid == vid and e.gone != "yes":
                if outcome is Outcome.ACKED:
                    e.gone = "yes"
                elif outcome is Outcome.MAYBE:
                    e.gone = "maybe"

    def live(self) -> list[VEntry]:
        return [e for e in self.history if e.gone != "yes"]

    def certain_versions(self) -> list[VEntry]:
        """Entries known to exist now, with known ids (the workload may delete these)."""
        return [e for e in self.live() if not e.optional and e.vid is not None]

    def observe(self, listed: Sequence[Listed]) -> list[VEntry]:
        """Match the actual version list (newest first) against the history; collapse.

        Returns the matched entries, newest first.  Raises Violation when no
        assignment of the optional entries explains what is listed.
        """
        expected = list(reversed(self.live()))
        match = _match(list(listed), expected)
        if match is None:
            raise Violation(
                f"{self.name}: versions listed [{', '.join(_row(r) for r in listed)}] do not "
                f"fit the history [{', '.join(e.short() for e in expected)}] (newest first)")
        matched: list[VEntry] = []
        for e, row in zip(expected, match, strict=True):
            if row is None:  # an optional entry that is not there
                e.gone = "yes"
                continue
            e.vid, e.certain, e.gone = row.vid, True, "no"
            matched.append(e)
        return matched


def _row(r: Listed) -> str:
    return f"{r.vid[:12]}:{'marker' if r.marker else f'{r.size}B/{r.etag[:8]}'}"


def _fits(row: Listed, e: VEntry) -> bool:
    if e.vid is not None and e.vid != row.vid:
        return False
    if e.value is None:
        return row.marker
    return (not row.marker and row.size == e.value.size
            and (not e.value.etag or row.etag == e.value.etag))


def _match(rows: list[Listed], expected: list[VEntry]) -> list[Listed | None] | None:
    """For each expected entry the row it is, or None (optional, absent); None: no fit.

    Order-preserving: rows and entries are both newest first.  Small inputs
    (a key keeps a handful of versions), so plain memoised search.
    """
    memo: dict[tuple[int, int], list[Listed | None] | None] = {}

    def go(i: int, j: int) -> list[Listed | None] | None:
        if j == len(expected):
            return [] if i == len(rows) else None
        if (i, j) in memo:
            return memo[(i, j)]
        e = expected[j]
        out = None
        if i < len(rows) and _fits(rows[i], e):
            rest = go(i + 1, j + 1)
            if rest is not None:
                out = [rows[i], *rest]
        if out is None and e.optional:
            rest = go(i, j + 1)
            if rest is not None:
                out = [None, *rest]
        memo[(i, j)] = out
        return out

    return go(0, 0)


# --------------------------------------------------------- multipart uploads
@dataclass
class Uploads:
    """Multipart uploads one worker started and has not finished."""

    certain: dict[str, str] = field(default_factory=dict)  # upload id -> key
    maybe_keys: set[str] = field(default_factory=set)  # keys with an upload whose id we never saw
    maybe_ids: set[str] = field(default_factory=set)  # completes/aborts that got no answer

    def created(self, outcome: Outcome, upload_id: str | None, key: str) -> None:
        if outcome is Outcome.ACKED and upload_id:
            self.certain[upload_id] = key
        elif outcome is Outcome.MAYBE:
            self.maybe_keys.add(key)

    def finished(self, upload_id: str, outcome: Outcome) -> None:
        """Complete or abort of ``upload_id`` ended with ``outcome``."""
        if outcome is Outcome.ACKED:
            self.certain.pop(upload_id, None)
        elif outcome is Outcome.MAYBE and upload_id in self.certain:
            self.maybe_ids.add(upload_id)

    def observe(self, listed: dict[str, str]) -> None:
        """``listed``: upload id -> key as ListMultipartUploads shows them (this worker's prefix)."""
        for uid, key in self.certain.items():
            if uid not in listed and uid not in self.maybe_ids:
                raise Violation(f"upload {uid[:16]} of {key} (acknowledged) is not listed")
        for uid, key in listed.items():
            if uid not in self.certain and key not in self.maybe_keys:
                raise Violation(f"upload {uid[:16]} of {key} is listed but is not in progress")
