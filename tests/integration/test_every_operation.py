"""Every S3 operation the router knows answers with S3's error shape -- never a 500.

The test walks the operation tables of ``titans3.s3.routing`` (the whole S3 REST
API, implemented or not), builds a minimal signed request for each one against a
real daemon, and checks the invariants of the S3 front:

* the status is never 500 (unimplemented operations are 501 NotImplemented);
* every response carries ``x-amz-request-id`` and ``x-amz-id-2``;
* every error (except on HEAD, which has no body) is the S3 XML ``<Error>`` with
  ``Code``, ``Message``, ``Resource`` and ``RequestId``;
* the daemon logged no traceback.

"Minimal" means: no body unless the operation is a write (then a small one),
the subresource in the query string, an existing bucket and key.  Many
requests are therefore refused (MalformedXML, NoSuchUpload, ...) -- that is
fine, the point is *how* they are refused.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest

from titans3.s3 import routing

from .cluster import HOST, REPO, Daemon, s3_client
from .rawhttp import sign

BUCKET = "every-op"
KEY = "some/key.txt"


def _requests() -> list[tuple[str, str, str, str, dict[str, str]]]:
    """(expected op, method, path, query, extra headers) for every routed operation."""
    out: list[tuple[str, str, str, str, dict[str, str]]] = [("ListBuckets", "GET", "/", "", {})]
    bucket_path, key_path = f"/{BUCKET}", f"/{BUCKET}/{KEY}"
    for method, table in routing._BUCKET_OPS.items():
        for sub, op in table:
            query = f"{sub}&id=x" if sub in routing._LISTED_BY_ID else sub
            out.append((op, method, bucket_path, query, {}))
            if method == "GET" and sub in routing._LISTED_BY_ID:
                out.append((routing._LISTED_BY_ID[sub], method, bucket_path, sub, {}))
        out.append((routing._BUCKET_DEFAULT[method], method, bucket_path, "", {}))
    out.append(("ListObjectsV2", "GET", bucket_path, "list-type=2", {}))
    for method, table in routing._OBJECT_OPS.items():
        for sub, op in table:
            query = f"{sub}=0123456789abcdef0123456789abcdef" if sub == "uploadId" else sub
            if op == "UploadPart":
                query += "&partNumber=1"
            out.append((op, method, key_path, query, {}))
        default = routing._OBJECT_DEFAULT.get(method)
        if default is not None:
            out.append((default, method, key_path, "", {}))
    copy = {"x-amz-copy-source": f"/{BUCKET}/{KEY}"}
    out.append(("CopyObject", "PUT", f"/{BUCKET}/copy-target", "", copy))
    out.append(("UploadPartCopy", "PUT", key_path,
                "partNumber=1&uploadId=0123456789abcdef0123456789abcdef", copy))  # fmt: skip
    return out


REQUESTS = _requests()
ALL_OPS = (
    {op for table in routing._BUCKET_OPS.values() for _, op in table}
    | set(routing._BUCKET_DEFAULT.values())
    | set(routing._LISTED_BY_ID.values())
    | {op for table in routing._OBJECT_OPS.values() for _, op in table}
    | set(routing._OBJECT_DEFAULT.values())
    | set(routing._COPY_OPS.values())
    | {"ListBuckets", "ListObjectsV2"}
)


def test_the_walk_covers_every_routed_operation() -> None:
    covered = set()
    for op, method, path, query, headers in REQUESTS:
        route = routing.classify(method, path, routing.parse_query(query), headers)
        assert route.op == op, (method, path, query)
        covered.add(op)
    assert covered == ALL_OPS


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    s3 = s3_client(module_daemon)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"hello")
    return module_daemon


def _send(d: Daemon, conn: http.client.HTTPConnection, method: str, path: str, query: str,
          headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    body = b"<x/>" if method in ("PUT", "POST") and "x-amz-copy-source" not in headers else b""
    target = path + (f"?{query}" if query else "")
    hdrs = sign(method, d.endpoint + target, d.credentials, headers,
                hashlib.sha256(body).hexdigest())  # fmt: skip
    if method == "OPTIONS":  # preflights are unauthenticated by design
        hdrs = {"Host": f"{HOST}:{d.s3_port}", "Origin": "https://example.org",
                "Access-Control-Request-Method": "GET"}  # fmt: skip
    conn.request(method, target, body=body, headers=hdrs)
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


@dataclass
class Walk:
    answered: dict[str, tuple[int, str | None]]  # op -> (status, error code)
    problems: list[str]
    log: str


@pytest.fixture(scope="module")
def walk(d: Daemon) -> Walk:
    """Every routed operation sent once to the daemon (module doc)."""
    mark = d.log_mark()
    problems: list[str] = []
    answered: dict[str, tuple[int, str | None]] = {}
    conn = http.client.HTTPConnection(HOST, d.s3_port, timeout=30)
    try:
        for op, method, path, query, headers in REQUESTS:
            try:
                status, hdrs, body = _send(d, conn, method, path, query, headers)
            except (http.client.HTTPException, OSError):
                # The server may close after refusing a request whose body it did
                # not read; that is allowed -- retry once on a fresh connection.
                conn.close()
                conn = http.client.HTTPConnection(HOST, d.s3_port, timeout=30)
                status, hdrs, body = _send(d, conn, method, path, query, headers)
            code = None
            where = f"{op} ({method} {path}?{query})"
            if status == 500 or status >= 500 and status not in (501, 503):
                problems.append(f"{where}: {status} {body[:200]!r}")
            if "x-amz-request-id" not in hdrs or "x-amz-id-2" not in hdrs:
                problems.append(f"{where}: no request id headers")
            if status >= 300 and status != 304 and method != "HEAD":
                try:
                    root = ET.fromstring(body)
                except ET.ParseError:
                    problems.append(f"{where}: {status} without an XML body: {body[:200]!r}")
                    answered[op] = (status, None)
                    continue
                fields = {child.tag: child.text for child in root}
                code = fields.get("Code")
                missing = {"Code", "Message", "Resource", "RequestId"} - set(fields)
                if root.tag != "Error" or missing:
                    problems.append(f"{where}: error body lacks {sorted(missing)}: {body[:300]!r}")
                elif fields["RequestId"] != hdrs.get("x-amz-request-id"):
                    problems.append(f"{where}: RequestId differs from x-amz-request-id")
                if status == 501 and code != "NotImplemented":
                    problems.append(f"{where}: 501 with code {code}")
            answered[op] = (status, code)
    finally:
        conn.close()
    time.sleep(0.3)
    return Walk(answered, problems, d.log_since(mark))


def test_every_operation_answers_without_500_and_in_s3_shape(walk: Walk) -> None:
    assert not walk.problems, "\n".join(walk.problems)
    assert set(walk.answered) == ALL_OPS
    assert "Traceback" not in walk.log


# ------------------------------------------------- docs/s3-compatibility.md
COMPAT = REPO / "docs" / "s3-compatibility.md"
_OP_NAME = re.compile(r"^[A-Z][A-Za-z0-9]+$")


def documented_statuses() -> dict[str, str]:
    """Operation -> status ("supported", "partial", "not supported", ...) from the
    tables under "## Operations": first column ``OpA / OpB (note)``, second the status."""
    text = COMPAT.read_text()
    section = text.split("\n## Operations", 1)[1].split("\n## ", 1)[0]
    statuses: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("Operation", "") or set(cells[0]) <= {"-"}:
            continue
        for name in cells[0].split(" / "):
            name = name.split(" (", 1)[0].strip()
            assert _OP_NAME.match(name), f"not one operation name per ' / ' in {line!r}"
            assert name not in statuses, f"{name} is documented twice"
            statuses[name] = cells[1].lower()
    return statuses


def test_the_compatibility_page_names_every_operation_once() -> None:
    documented = documented_statuses()
    assert set(documented) == ALL_OPS, (
        f"undocumented: {sorted(ALL_OPS - set(documented))}; "
        f"unknown: {sorted(set(documented) - ALL_OPS)}")


def test_the_documented_501_list_is_what_the_server_answers(walk: Walk) -> None:
    """Data-driven: a row added or changed on the page (or a handler added in the
    code) is checked the next time this runs -- nothing here lists operations."""
    documented = documented_statuses()
    answers_501 = {op for op, (status, code) in walk.answered.items()
                   if status == 501 and code == "NotImplemented"}  # fmt: skip
    documented_501 = {op for op, status in documented.items() if status == "not supported"}
    assert sorted(answers_501 - documented_501) == [], "501 but documented as implemented"
    assert sorted(documented_501 - answers_501) == [], "documented as 501 but implemented"
