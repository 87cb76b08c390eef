"""The torture workload: seeded worker threads doing a bounded S3 mix, every outcome recorded.

Theory of operation
-------------------
A :class:`World` holds the model (:mod:`tests.torture.model`) and the
counters; each :class:`Worker` owns a key range in both buckets
(``w<N>/k<i>`` plain, ``w<N>/v<i>`` versioned) and its multipart uploads, and
runs one request at a time, so what it records per key is exact.  Workers
run concurrently with each other and with the fault schedule.

Operations (weights in :data:`MIX`): PUT 0 B-16 MiB (overwrites when the key
exists), multipart upload (2-3 parts, sometimes left open or aborted),
DELETE, versioned PUT, delete marker, DELETE of one version, CopyObject
(plain to plain or to the versioned bucket), GET and LIST of the worker's own
keys checked against the model inline.  Bodies come from the worker's seeded
RNG; only their SHA-256, size and ETag are kept.

Every request ends ACKED (2xx), FAILED (4xx) or MAYBE (no answer, a broken
connection, a 5xx); :func:`outcome_of` is the one place that decides.  An
exception that is none of these (a bug in the harness) propagates and fails
the round.  With ``stop`` set (a kill is coming or happened) a worker
finishes the request in hand and returns.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from tests.integration.rawhttp import sign
from tests.torture.hosts import Node, Topology
from tests.torture.model import (
    Outcome,
    PlainKey,
    Uploads,
    Value,
    VersionedKey,
    Violation,
    multipart_etag,
)

MiB = 1 << 20
PLAIN, VERSIONED = "torture", "torture-versioned"
KEYS_PER_WORKER = 4  # per bucket: the checker reads every key every round (CI cost)
MAX_VERSIONS = 5  # per versioned key; more and the worker deletes the oldest
PART = 5 * MiB  # S3's minimum part size (all but the last)

# (weight, lowest, highest) size classes: inline in LMDB, one segment, many segments.
SIZES = ((6, 0, 0), (30, 1, 4096), (24, 4097, 128 * 1024), (20, 128 * 1024 + 1, MiB),
         (14, MiB + 1, 4 * MiB), (6, 4 * MiB + 1, 16 * MiB))
MIX = {"put": 26, "mpu": 4, "delete": 9, "vput": 12, "vdelete": 4, "vdelete_version": 4,
       "copy": 8, "get": 12, "list": 7}


def pick_size(rng: random.Random) -> int:
    total = sum(w for w, _, _ in SIZES)
    x = rng.randrange(total)
    for w, lo, hi in SIZES:
        if x < w:
            return rng.randint(lo, hi)
        x -= w
    raise AssertionError("unreachable")


def outcome_of(e: BaseException) -> Outcome:
    """What a failed request means for the model (see module doc).  A connection that was
    never made (refused: the node is down) sent nothing, so nothing happened."""
    if isinstance(e, EndpointConnectionError):
        return Outcome.FAILED
    if isinstance(e, ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return Outcome.FAILED if 400 <= status < 500 else Outcome.MAYBE
    return Outcome.MAYBE


TRANSPORT = (ClientError, BotoCoreError, OSError, http.client.HTTPException)


def error_code(e: BaseException) -> str:
    if isinstance(e, ClientError):
        return e.response.get("Error", {}).get("Code", "?")
    return type(e).__name__


@dataclass
class Tally:
    """Counters for the report; thread-safe."""

    ops: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # error code of non-ACKED requests
    bytes_acked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: str, outcome: Outcome, nbytes: int = 0, err: str = "") -> None:
        with self.lock:
            self.ops[(op, outcome.value)] += 1
            if outcome is Outcome.ACKED:
                self.bytes_acked += nbytes
            if err:
                self.errors[f"{op}:{err}"] += 1

    def count(self, outcome: str) -> int:
        return sum(n for (_, o), n in self.ops.items() if o == outcome)


class OpLog:
    """Every request as one JSON line: what a failed run is debugged from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "a")  # noqa: SIM115 -- closed by close()
        self._lock = threading.Lock()

    def write(self, **rec: Any) -> None:
        rec["t"] = round(time.time(), 3)
        line = json.dumps(rec, separators=(",", ":"))
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()

    def close(self) -> None:
        self._f.close()


@dataclass
class World:
    topo: Topology
    log: OpLog
    plain: dict[str, PlainKey] = field(default_factory=dict)
    versioned: dict[str, VersionedKey] = field(default_factory=dict)
    uploads: dict[int, Uploads] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    round: int = 0


class Worker:
    def __init__(self, world: World, wid: int, seed: int) -> None:
        self.w = world
        self.wid = wid
        self.rng = random.Random(seed * 1000 + wid)
        self.prefix = f"w{wid}/"
        self.keys = [f"{self.prefix}k{i:02d}" for i in range(KEYS_PER_WORKER)]
        self.vkeys = [f"{self.prefix}v{i:02d}" for i in range(KEYS_PER_WORKER)]
        for k in self.keys:
            world.plain.setdefault(k, PlainKey(k))
        for k in self.vkeys:
            world.versioned.setdefault(k, VersionedKey(k))
        self.uploads = world.uploads.setdefault(wid, Uploads())
        self.violations: list[Violation] = []
        self.node: Node | None = None

    # ------------------------------------------------------------ driving
    def run(self, n_ops: int, stop: threading.Event) -> None:
        ops, weights = zip(*MIX.items(), strict=True)
        for _ in range(n_ops):
            if stop.is_set():
                return
            op = self.rng.choices(ops, weights)[0]
            try:
                getattr(self, "op_" + op)()
            except Violation as v:
                self.violations.append(v)
                return

    def _client(self) -> Any | None:
        live = self.w.topo.live()
        if not live:
            return None
        self.node = self.rng.choice(live)
        return self.w.topo.client(self.node)

    def _record(self, op: str, key: str, outcome: Outcome, value: Value | None = None,
                err: str = "", **extra: Any) -> None:
        self.w.tally.add(op, outcome, value.size if value else 0, err)
        self.w.log.write(r=self.w.round, w=self.wid, op=op, key=key, out=outcome.value,
                         val=value.short() if value else None,
                         node=self.node.name if self.node else None, err=err or None, **extra)

    def _body(self) -> tuple[bytes, Value]:
        data = self.rng.randbytes(pick_size(self.rng))
        return data, Value.of(data)

    # --------------------------------------------------------- plain keys
    def op_put(self, key: str | None = None, data: bytes | None = None) -> None:
        key = key or self.rng.choice(self.keys)
        if data is None:
            data, value = self._body()
        else:
            value = Value.of(data)
        s3 = self._client()
        if s3 is None:
            return
        try:
            r = s3.put_object(Bucket=PLAIN, Key=key, Body=data)
            outcome, err = Outcome.ACKED, ""
            value = Value(value.sha256, value.size, r["ETag"].strip('"'))
        except TRANSPORT as e:
            outcome, err = outcome_of(e), error_code(e)
        self.w.plain[key].record(outcome, value)
        self._record("put", key, outcome, value, err)

    def op_delete(self) -> None:
        key = self.rng.choice(self.keys)
        s3 = self._client()
        if s3 is None:
            return
        try:
            s3.delete_object(Bucket=PLAIN, Key=key)
            outcome, err = Outcome.ACKED, ""
        except TRANSPORT as e:
            outcome, err = outcome_of(e), error_code(e)
        self.w.plain[key].record(outcome, None)
        self._record("delete", key, outcome, None, err)

    def op_get(self) -> None:
        key = self.rng.choice(self.keys)
        s3 = self._client()
        if s3 is None:
            return
        try:
            seen = read_value(s3, PLAIN, key)
        except TRANSPORT as e:
            self._record("get", key, outcome_of(e), None, error_code(e))
            return
        self.w.plain[key].observe(seen, f"GET via {self.node.name if self.node else '?'}")
        self._record("get", key, Outcome.ACKED, seen)

    def op_list(self) -> None:
        s3 = self._client()
        if s3 is None:
            return
        try:
            rows = list_plain(s3, PLAIN, self.prefix, page=self.rng.randint(1, 4))
        except TRANSPORT as e:
            self._record("list", self.prefix, outcome_of(e), None, error_code(e))
            return
        observe_listing(self.w.plain, self.keys, rows, f"LIST {self.prefix}")
        self._record("list", self.prefix, Outcome.ACKED, None, keys=len(rows))

    def op_copy(self) -> None:
        src = self.rng.choice(self.keys)
        model = self.w.plain[src]
        if not model.certain:
            self.op_get_key(src)
            if not model.certain:
                return
        if model.value is None:
            return
        to_versioned = self.rng.random() < 0.3
        dest = self.rng.choice(self.vkeys if to_versioned else self.keys)
        bucket = VERSIONED if to_versioned else PLAIN
        s3 = self._client()
        if s3 is None:
            return
        value = Value(model.value.sha256, model.value.size, "")
        vid = None
        try:
            r = s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": PLAIN, "Key": src})
            outcome, err = Outcome.ACKED, ""
            value = Value(value.sha256, value.size, r["CopyObjectResult"]["ETag"].strip('"'))
            vid = r.get("VersionId")
        except TRANSPORT as e:
            outcome, err = outcome_of(e), error_code(e)
        if to_versioned:
            self.w.versioned[dest].put(outcome, value, vid)
        else:
            self.w.plain[dest].record(outcome, value)
        self._record("copy", dest, outcome, value, err, src=src, vid=vid)

    def op_get_key(self, key: str) -> None:
        s3 = self._client()
        if s3 is None:
            return
        try:
            seen = read_value(s3, PLAIN, key)
        except TRANSPORT:
            return
        self.w.plain[key].observe(seen, "GET before copy")

    def op_mpu(self, fate: float | None = None) -> None:
        """``fate``: < 0.15 leave the upload open, < 0.25 abort it, else complete (drawn if None)."""
        key = self.rng.choice(self.keys)
        s3 = self._client()
        if s3 is None:
            return
        try:
            uid = s3.create_multipart_upload(Bucket=PLAIN, Key=key)["UploadId"]
            self.uploads.created(Outcome.ACKED, uid, key)
            self._record("mpu_create", key, Outcome.ACKED, None, upload=uid)
        except TRANSPORT as e:
            self.uploads.created(outcome_of(e), None, key)
            self._record("mpu_create", key, outcome_of(e), None, error_code(e))
            return
        nparts = self.rng.randint(2, 3)
        md5s, whole, parts = [], hashlib.sha256(), []
        size = 0
        for n in range(1, nparts + 1):
            last = n == nparts
            data = self.rng.randbytes(self.rng.randint(1, MiB) if last else PART + self.rng.randint(0, MiB))
            try:
                r = s3.upload_part(Bucket=PLAIN, Key=key, UploadId=uid, PartNumber=n, Body=data)
            except TRANSPORT as e:
                self._record("mpu_part", key, outcome_of(e), None, error_code(e), upload=uid)
                self._check_upload_lost(e, uid, key)
                return  # left in progress: the checker lists and aborts it
            self._record("mpu_part", key, Outcome.ACKED, None, upload=uid, part=n)
            md5s.append(hashlib.md5(data).digest())
            whole.update(data)
            size += len(data)
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        fate = self.rng.random() if fate is None else fate
        if fate < 0.15:
            return  # abandoned in progress
        if fate < 0.25:
            try:
                s3.abort_multipart_upload(Bucket=PLAIN, Key=key, UploadId=uid)
                outcome, err = Outcome.ACKED, ""
            except TRANSPORT as e:
                outcome, err = outcome_of(e), error_code(e)
                self._check_upload_lost(e, uid, key)
            self.uploads.finished(uid, outcome)
            self._record("mpu_abort", key, outcome, None, err, upload=uid)
            return
        value = Value(whole.hexdigest(), size, multipart_etag(md5s))
        try:
            s3.complete_multipart_upload(Bucket=PLAIN, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": parts})
            outcome, err = Outcome.ACKED, ""
        except TRANSPORT as e:
            outcome, err = outcome_of(e), error_code(e)
            self._check_upload_lost(e, uid, key)
        self.uploads.finished(uid, outcome)
        self.w.plain[key].record(outcome, value)
        self._record("mpu_complete", key, outcome, value, err, upload=uid)

    def _check_upload_lost(self, e: BaseException, uid: str, key: str) -> None:
        if (error_code(e) == "NoSuchUpload" and uid in self.uploads.certain
                and uid not in self.uploads.maybe_ids):
            raise Violation(f"upload {uid[:16]} of {key}: acknowledged, now NoSuchUpload")

    # ------------------------------------------------------ versioned keys
    def op_vput(self) -> None:
        key = self.rng.choice(self.vkeys)
        data, value = self._body()
        s3 = self._client()
        if s3 is None:
            return
        vid = None
        try:
            r = s3.put_object(Bucket=VERSIONED, Key=key, Body=data)
            outcome, err, vid = Outcome.ACKED, "", r.get("VersionId")
            value = Value(value.sha256, value.size, r["ETag"].strip('"'))
        except TRANSPORT as e:
            outcome, err = outcome_of(e), error_code(e)
        self.w.versioned[key].put(outcome, value, vid)
        self._record("vput", key, outcome, value, err, vid=vid)
        self._trim(key)

    def op_vdelete(self) -> None:
        key = self.rng.choice(self.vkeys)
        s3 = self._client()
        if s3 is None:
            return
        vid = None
        try:
            r = s3.delete_object(Bucket=VERSIONED, Key=key)
            outcome, err, vid = Outcome.ACKED, "", r.get("VersionId")
            if not r.get("DeleteMarker"):
                raise Violation(f"{key}: DELETE in a versioned bucket made no delete marker")
        except TRANSPORT as e:
            outcome, err = outcome_of(e), error_code(e)
        self.w.versioned[key].put(outcome, None, vid)
        self._record("vdelete", key, outcome, None, err, vid=vid)
        self._trim(key)

    def op_vdelete_version(self, key: str | None = None, vid: str | None = None) -> None:
        key = key or self.rng.choice(self.vkeys)
        if vid is None:
            certain = self.w.versioned[key].certain_versions()
            if not certain:
                return
            vid = self.rng.choice(certain).vid
        s3 = self._client()
        if s3 is None:
            return
        try:
            s3.delete_object(Bucket=VERSIONED, Key=key, VersionId=vid)
            outcome, err = Outcome.ACKED, ""
        except TRANSPORT as e:
            outcome, err = outcome_of(e), error_code(e)
        assert vid is not None
        self.w.versioned[key].delete_version(vid, outcome)
        self._record("vdelete_version", key, outcome, None, err, vid=vid)

    def _trim(self, key: str) -> None:
        certain = self.w.versioned[key].certain_versions()
        if len(self.w.versioned[key].live()) > MAX_VERSIONS and certain:
            self.op_vdelete_version(key, certain[0].vid)

    # ------------------------------------------------- a PUT to kill under
    def raw_put(self, on_body_sent: Callable[[], None], size: int) -> None:
        """A PUT over http.client that calls ``on_body_sent`` after its last byte,
        before reading the answer: the daemon is committing right then."""
        key = self.rng.choice(self.keys)
        data = self.rng.randbytes(size)
        value = Value.of(data)
        live = self.w.topo.live()
        if not live:
            return
        self.node = self.rng.choice(live)
        d = self.node.daemon
        path = "/" + PLAIN + "/" + urllib.parse.quote(key, safe="/~")
        hdrs = sign("PUT", d.endpoint + path, d.credentials, {}, hashlib.sha256(data).hexdigest())
        host, port = d.endpoint.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=90)
        outcome, err = Outcome.MAYBE, ""
        try:
            conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
            for name, val in hdrs.items():
                conn.putheader(name, val)
            conn.putheader("Content-Length", str(len(data)))
            conn.endheaders()
            conn.send(data)
            on_body_sent()
            resp = conn.getresponse()
            resp.read()
            if 200 <= resp.status < 300:
                outcome = Outcome.ACKED
                value = Value(value.sha256, value.size, resp.getheader("ETag", "").strip('"'))
            elif 400 <= resp.status < 500:
                outcome, err = Outcome.FAILED, str(resp.status)
            else:
                err = str(resp.status)
        except (OSError, http.client.HTTPException) as e:
            err = type(e).__name__
        finally:
            conn.close()
        self.w.plain[key].record(outcome, value)
        self._record("put_commit_kill", key, outcome, value, err)


# ------------------------------------------------------- shared read helpers
def read_value(s3: Any, bucket: str, key: str, version_id: str | None = None) -> Value | None:
    """The object's content as a Value (None: NoSuchKey / delete marker); other errors raise."""
    kw = {"VersionId": version_id} if version_id else {}
    try:
        r = s3.get_object(Bucket=bucket, Key=key, **kw)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchVersion"):
            return None
        if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 405 and version_id:
            return None  # GET of a delete marker by id
        raise
    h = hashlib.sha256()
    n = 0
    body = r["Body"]
    while chunk := body.read(MiB):
        h.update(chunk)
        n += len(chunk)
    if n != r["ContentLength"]:
        raise Violation(f"{bucket}/{key}: {n} bytes read, Content-Length {r['ContentLength']}")
    return Value(h.hexdigest(), n, r["ETag"].strip('"'))


def list_plain(s3: Any, bucket: str, prefix: str, page: int = 1000) -> dict[str, tuple[int, str]]:
    """key -> (size, etag) of ListObjectsV2 under ``prefix``, paginated ``page`` keys at a time."""
    out: dict[str, tuple[int, str]] = {}
    kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page}
    while True:
        r = s3.list_objects_v2(**kw)
        for o in r.get("Contents", []):
            if o["Key"] in out:
                raise Violation(f"LIST {prefix}: {o['Key']} listed twice across pages")
            out[o["Key"]] = (o["Size"], o["ETag"].strip('"'))
        if not r.get("IsTruncated"):
            return out
        kw["ContinuationToken"] = r["NextContinuationToken"]


def observe_listing(models: dict[str, PlainKey], keys: list[str],
                    rows: dict[str, tuple[int, str]], how: str) -> None:
    extra = set(rows) - set(keys)
    if extra:
        raise Violation(f"{how}: lists keys never written: {sorted(extra)[:5]}")
    for k in keys:
        if k in rows:
            models[k].observe_listing(*rows[k], how)
        else:
            models[k].observe(None, how)
