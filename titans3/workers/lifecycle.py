"""The lifecycle worker: bucket lifecycle rules applied in the background.

Theory of operation
-------------------
A pass walks every bucket this host *owns* (below) that has a lifecycle
configuration, in name order, and for each key's versions (newest first,
from ListObjectVersions) applies the rules of :mod:`titans3.core.lifecycle`:

1. **Expiration** of the current version when due: a purge in an
   unversioned bucket, a delete marker otherwise (exactly what a DELETE
   without version id does);
2. **NoncurrentVersionExpiration**: each noncurrent version (delete markers
   too) whose successor is older than ``NoncurrentDays``, beyond the
   ``NewerNoncurrentVersions`` newest ones, is deleted by version id;
3. **ExpiredObjectDeleteMarker**: a delete marker left with no other
   version is removed;
4. **Transition** / **NoncurrentVersionTransition**: a version due (by the
   same dates) and not yet in the rule's storage class is re-encoded into
   that class's erasure scheme (``ObjectAPI.transition_object``,
   ``objects/transition.py``) -- same version id, ETag and bytes; an
   interrupted re-encode is finished by the next pass;
5. **AbortIncompleteMultipartUpload**: uploads initiated more than
   ``DaysAfterInitiation`` ago under the rule's prefix are aborted.

Every deletion goes through the object layer's ordinary delete, which
refuses versions under object lock (retention or legal hold): lifecycle
never removes a locked version, it counts it as ``locked_kept``.

*Exactly once, cluster-wide.*  Each bucket has one owner at a time: the
live host with the highest rendezvous hash of (host, bucket) -- the
``owns`` callable the daemon passes, ``True`` on a single host.  When a host
dies its buckets move to the survivors at their next pass.  Every action is
idempotent where it could repeat: deleting a version by id twice is a no-op,
and an expiration acts only while the current version is still a data
version (a second owner finds the marker and does nothing).

*Resumable.*  Progress (pass number, bucket, last finished key) is saved to
``state`` every few seconds; a restarted daemon resumes where it stopped.

*Throttled.*  At most ``rate`` deletions/aborts per second (0: unthrottled),
and one listing page at a time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from titans3.core import lifecycle as lc
from titans3.core.crypto import write_atomic
from titans3.core.errors import AccessDenied, NoSuchUpload, S3Error

log = logging.getLogger(__name__)

SAVE_EVERY = 5.0  # seconds between checkpoints


@dataclass(frozen=True, slots=True)
class LifecycleStatistics:
    state: str  # idle | scanning | waiting
    progress: float | None  # buckets done / buckets in this pass
    passes: int
    bucket: str
    buckets_scanned: int
    objects_scanned: int
    expired: int
    noncurrent_expired: int
    markers_removed: int
    uploads_aborted: int
    locked_kept: int
    errors: int
    last_error: str
    last_pass_ns: int
    day_seconds: float
    transitioned: int = 0


class LifecycleWorker:
    def __init__(self, store: Callable[[], Any], *, state: Path, day_seconds: float = lc.DAY,
                 interval: float = 3600.0, rate: float = 200.0,
                 owns: Callable[[str], bool] = lambda bucket: True,
                 first_delay: float | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        self._store = store
        self.state_path = state
        self.day = day_seconds
        self.interval = interval
        self.rate = rate
        self.owns = owns
        self.first_delay = min(interval, 30.0) if first_delay is None else first_delay
        self.clock = clock
        self._wake = trio.Event()
        self._state = "idle"
        self._bucket = ""
        self._done = self._total = 0
        self.passes = 0
        self.buckets_scanned = self.objects_scanned = 0
        self.expired = self.noncurrent_expired = self.markers_removed = 0
        self.uploads_aborted = self.locked_kept = self.errors = 0
        self.transitioned = 0
        self.last_error = ""
        self.last_pass_ns = 0
        self._resume: dict[str, Any] = self._load()
        self._saved_at = 0.0
        self._next_op = 0.0

    # ------------------------------------------------------------ control
    def statistics(self) -> LifecycleStatistics:
        progress = self._done / self._total if self._state == "scanning" and self._total else None
        return LifecycleStatistics(
            self._state, progress, self.passes, self._bucket, self.buckets_scanned,
            self.objects_scanned, self.expired, self.noncurrent_expired, self.markers_removed,
            self.uploads_aborted, self.locked_kept, self.errors, self.last_error,
            self.last_pass_ns, self.day, self.transitioned)

    def start_pass(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        with trio.move_on_after(self.first_delay):
            await self._wake.wait()
        while True:
            self._wake = trio.Event()
            try:
                await self.run_pass()
            except Exception as e:  # noqa: BLE001 -- a failed pass is retried next time, never fatal
                self.errors += 1
                self.last_error = f"pass failed: {e}"
                log.warning("lifecycle pass failed: %s", e, exc_info=True)
            self._state = "waiting"
            with trio.move_on_after(self.interval):
                await self._wake.wait()

    # ------------------------------------------------------------ checkpoint
    def _load(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.state_path.read_text())
            self.passes = int(doc.get("passes", 0))
            return doc if doc.get("bucket") else {}
        except (OSError, ValueError):
            return {}

    async def _save(self, bucket: str, key: str, *, force: bool = False) -> None:
        now = trio.current_time()
        if not force and now - self._saved_at < SAVE_EVERY:
            return
        self._saved_at = now
        doc = json.dumps({"passes": self.passes, "bucket": bucket, "key": key}).encode()
        await trio.to_thread.run_sync(write_atomic, self.state_path, doc, 0o644)

    # ------------------------------------------------------------ the pass
    async def run_pass(self) -> None:
        store = self._store()
        self._state = "scanning"
        buckets = sorted(b.name for b in await store.list_buckets())
        resume, self._resume = self._resume, {}
        self._total, self._done = len(buckets), 0
        for name in buckets:
            if resume and name < resume["bucket"]:
                self._done += 1
                continue
            start = resume.get("key", "") if resume and name == resume["bucket"] else ""
            self._bucket = name
            if self.owns(name):
                try:
                    await self._one_bucket(store, name, start)
                except S3Error as e:  # a bucket deleted meanwhile, a quorum lost: next pass
                    self.errors += 1
                    self.last_error = f"{name}: {e.code}"
                self.buckets_scanned += 1
            self._done += 1
            await self._save(name, "\uffff", force=True)
        self.passes += 1
        self._bucket = ""
        self.last_pass_ns = self.clock()
        await trio.to_thread.run_sync(write_atomic, self.state_path,
                                      json.dumps({"passes": self.passes}).encode(), 0o644)

    async def _one_bucket(self, store: Any, bucket: str, start: str) -> None:
        rules = lc.load(await store.get_bucket_config(bucket, lc.NAME))
        if not rules or not any(r.enabled for r in rules):
            return
        versioning = (await store.head_bucket(bucket)).versioning
        if start == "\uffff":
            return
        key_marker, vid_marker = start, ""
        group: list[Any] = []
        while True:
            page = await store.list_object_versions(bucket, key_marker=key_marker,
                                                    version_id_marker=vid_marker, max_keys=1000)
            for v in page.versions:
                if group and v.key != group[0].key:
                    await self._one_key(store, bucket, versioning, rules, group)
                    await self._save(bucket, group[0].key)
                    group = []
                group.append(v)
            if not page.is_truncated:
                break
            key_marker, vid_marker = page.next_key_marker or "", page.next_version_id_marker or ""
            await trio.sleep(0)
        if group:
            await self._one_key(store, bucket, versioning, rules, group)
        await self._uploads(store, bucket, rules)

    async def _throttle(self) -> None:
        if self.rate <= 0:
            await trio.sleep(0)
            return
        now = trio.current_time()
        self._next_op = max(self._next_op, now) + 1.0 / self.rate
        await trio.sleep_until(self._next_op - 1.0 / self.rate)

    async def _delete(self, store: Any, bucket: str, key: str, version_id: str | None) -> bool:
        await self._throttle()
        try:
            await store.delete_object(bucket, key, version_id=version_id)
            return True
        except AccessDenied:
            self.locked_kept += 1  # object lock: lifecycle never removes a locked version
        except S3Error as e:
            self.errors += 1
            self.last_error = f"{bucket}/{key}: {e.code}"
        return False

    async def _one_key(self, store: Any, bucket: str, versioning: str, rules: Sequence[lc.Rule],
                       versions: list[Any]) -> None:
        now = self.clock()
        key = versions[0].key
        self.objects_scanned += len(versions)
        current = versions[0] if versions[0].is_latest else None
        if current is not None and not current.delete_marker:
            for rule in rules:
                at = lc.expiration_of(rule, current.mtime_ns, self.day) \
                    if rule.matches(key, current.tags, current.size) else None
                if at is not None and at <= now:
                    if await self._delete(store, bucket, key, None):
                        self.expired += 1
                    return  # the expired version only now became noncurrent
            target = _due_class(
                (t for r in rules if r.matches(key, current.tags, current.size)
                 for t in lc.transitions_of(r, current.mtime_ns, self.day)), now)
            if target is not None:
                await self._transition(store, bucket, key, None, target, current)
        if versioning == "":
            return
        left = list(versions)
        start = 1 if current is not None else 0
        for rule in rules:
            if rule.noncurrent_days is None:
                continue
            kept = 0
            for i in range(start, len(versions)):
                v = versions[i]
                if v not in left or not rule.matches(key, v.tags, None if v.delete_marker else v.size):
                    continue
                if rule.newer_noncurrent and kept < rule.newer_noncurrent:
                    kept += 1
                    continue
                since = versions[i - 1].mtime_ns if i else v.mtime_ns
                if lc.due_ns(since, rule.noncurrent_days, self.day) <= now and \
                        await self._delete(store, bucket, key, v.version_id):
                    self.noncurrent_expired += 1
                    left.remove(v)
        for i in range(start, len(versions)):
            v = versions[i]
            if v not in left or v.delete_marker:
                continue
            since = versions[i - 1].mtime_ns if i else v.mtime_ns
            target = _due_class(
                (t for r in rules if r.matches(key, v.tags, v.size)
                 for t in lc.noncurrent_transitions_of(r, since, self.day)), now)
            if target is not None:
                await self._transition(store, bucket, key, v.version_id, target, v)
        if current is not None and current.delete_marker and len(left) == 1 and any(
                r.expired_delete_marker and r.matches(key) for r in rules) and \
                await self._delete(store, bucket, key, current.version_id):
            self.markers_removed += 1

    async def _transition(self, store: Any, bucket: str, key: str, version_id: str | None,
                          target: str, info: Any) -> None:
        """Re-encode one version into ``target`` unless it is there (the store
        also finishes an interrupted re-encode it finds; a no-op otherwise)."""
        await self._throttle()
        try:
            if await store.transition_object(bucket, key, target, version_id=version_id):
                self.transitioned += 1
        except S3Error as e:
            self.errors += 1
            self.last_error = f"{bucket}/{key}: transition to {target}: {e.code}"
            log.warning("lifecycle transition of %s/%s to %s failed: %s", bucket, key, target, e)

    async def _uploads(self, store: Any, bucket: str, rules: Sequence[lc.Rule]) -> None:
        aborting = [r for r in rules if r.enabled and r.abort_days is not None]
        if not aborting:
            return
        key_marker = upload_marker = ""
        while True:
            page = await store.list_multipart_uploads(bucket, key_marker=key_marker,
                                                      upload_id_marker=upload_marker)
            now = self.clock()
            for up in page.uploads:
                if any(r.matches(up.key) and lc.due_ns(up.initiated_ns, r.abort_days, self.day) <= now
                       for r in aborting):
                    await self._throttle()
                    try:
                        await store.abort_multipart(bucket, up.key, up.upload_id)
                        self.uploads_aborted += 1
                    except NoSuchUpload:
                        pass  # completed or aborted meanwhile (or by the bucket's other owner)
                    except S3Error as e:
                        self.errors += 1
                        self.last_error = f"{bucket}/{up.key}: {e.code}"
            if not page.is_truncated:
                return
            key_marker, upload_marker = page.next_key_marker or "", page.next_upload_id_marker or ""


def _due_class(candidates: Any, now: int) -> str | None:
    """The class of the latest-due transition already due (None: none is)."""
    due = [(at, cls) for at, cls in candidates if at is not None and cls and at <= now]
    return max(due)[1] if due else None


def rendezvous_owner(bucket: str, hosts: Sequence[str]) -> str:
    """The host among ``hosts`` that owns ``bucket`` (highest blake3 of host ‖ bucket)."""
    import blake3

    return max(hosts, key=lambda h: blake3.blake3(f"{h}\0{bucket}".encode()).digest())
