"""Parsing of the options object handlers share: tags header, conditional writes,
part numbers, version ids; and the copy headers."""

from __future__ import annotations

import pytest

from titans3.core.errors import (
    InvalidArgument,
    InvalidBucketName,
    InvalidRequest,
    InvalidTag,
    NoSuchKey,
    PreconditionFailed,
)
from titans3.objects.types import ObjectInfo
from titans3.s3 import object_options as opts
from titans3.s3.handlers_copy import directive, parse_copy_range, parse_copy_source, source_check


# ---------------------------------------------------------------- tagging
def test_tagging_header_is_url_query_form():
    assert opts.tagging_header({"x-amz-tagging": "a=1&b%20c=d%2Be&empty="}) == {
        "a": "1", "b c": "d+e", "empty": ""}
    assert opts.tagging_header({}) is None
    assert opts.tagging_header({"x-amz-tagging": ""}) == {}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("a=1&a=2", InvalidArgument),
        ("a=%ff", InvalidArgument),
        ("&".join(f"k{i}=v" for i in range(11)), InvalidTag),
        ("aws%3Ax=1", InvalidTag),
        ("k=" + "v" * 257, InvalidTag),
    ],
)
def test_bad_tagging_headers(value, error):
    with pytest.raises(error):
        opts.tagging_header({"x-amz-tagging": value})


# ----------------------------------------------------- conditional writes
def test_write_condition_parsing():
    assert opts.write_condition({}) is None
    c = opts.write_condition({"if-none-match": "*"})
    assert c.if_none_match and c.if_match is None
    c = opts.write_condition({"if-match": '"abc", W/"def"'})
    assert c.if_match == ("abc", "def") and not c.if_none_match


def test_if_none_match_and_if_match_take_both_forms():
    c = opts.write_condition({"if-none-match": '"abc", "def"'})
    assert not c.if_none_match and c.if_none_match_etags == ("abc", "def")
    c = opts.write_condition({"if-match": "*"})
    assert c.if_match == ("*",)


@pytest.mark.parametrize(
    ("headers", "current_etag", "error"),
    [
        ({"if-none-match": '"abc"'}, "abc", PreconditionFailed),
        ({"if-none-match": '"abc"'}, "other", None),
        ({"if-none-match": '"abc"'}, None, None),
        ({"if-none-match": "*"}, "abc", PreconditionFailed),
        ({"if-none-match": "*"}, None, None),
        ({"if-match": "*"}, "abc", None),
        ({"if-match": "*"}, None, NoSuchKey),
        ({"if-match": '"abc"'}, "abc", None),
        ({"if-match": '"abc"'}, "other", PreconditionFailed),
    ],
)
def test_write_conditions_hold_or_fail_like_s3(headers, current_etag, error):
    from titans3.objects.types import ObjectInfo

    current = None if current_etag is None else ObjectInfo("b", "k", "null", 1, current_etag, 0)
    condition = opts.write_condition(headers)
    if error is None:
        condition.check(current, "k")
    else:
        with pytest.raises(error):
            condition.check(current, "k")


# ------------------------------------------------------------ part numbers
def test_part_number_param():
    assert opts.part_number_param({}, {}) is None
    assert opts.part_number_param({"partNumber": "10000"}, {}) == 10000
    for bad in ("0", "10001", "x", "-1", ""):
        with pytest.raises(InvalidArgument):
            opts.part_number_param({"partNumber": bad}, {})
    with pytest.raises(InvalidRequest):
        opts.part_number_param({"partNumber": "1"}, {"range": "bytes=0-1"})


def test_empty_version_id_is_invalid():
    assert opts.version_id_param({"versionId": "null"}) == "null"
    with pytest.raises(InvalidArgument):
        opts.version_id_param({"versionId": ""})


# -------------------------------------------------------------------- copy
@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("bkt/key", ("bkt", "key", None)),
        ("/bkt/dir/a%20b%3Fc", ("bkt", "dir/a b?c", None)),
        ("bkt/k%2Bplus+raw?versionId=abc", ("bkt", "k+plus+raw", "abc")),
        ("bkt/%E2%82%AC", ("bkt", "€", None)),
    ],
)
def test_copy_source_parsing(value, want):
    assert parse_copy_source(value) == want


@pytest.mark.parametrize(("value", "error"), [
    ("bkt", InvalidArgument), ("bkt/", InvalidArgument), ("/", InvalidArgument),
    ("bkt/k?versionId=", InvalidArgument), ("BAD_bucket/k", InvalidBucketName),
    ("bkt/%ff", InvalidArgument),
])
def test_bad_copy_sources(value, error):
    with pytest.raises(error):
        parse_copy_source(value)


def test_directives():
    assert directive({}, "x-amz-metadata-directive", "metadata") == "COPY"
    assert directive({"x-amz-metadata-directive": "REPLACE"}, "x-amz-metadata-directive", "m") == "REPLACE"
    with pytest.raises(InvalidArgument):
        directive({"x-amz-tagging-directive": "MERGE"}, "x-amz-tagging-directive", "tagging")


def test_copy_source_range():
    assert parse_copy_range(None) is None
    assert parse_copy_range("bytes=0-0") == (0, 0)
    for bad in ("bytes=5-4", "bytes=-5", "bytes=5-", "0-5", "bytes=1-2,3-4"):
        with pytest.raises(InvalidArgument):
            parse_copy_range(bad)


SRC = ObjectInfo("b", "k", "null", 1, "etag1", 1_000_000_000 * 1_700_000_000)
BEFORE = "Mon, 01 Jan 2018 00:00:00 GMT"
AFTER = "Mon, 01 Jan 2035 00:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "passes"),
    [
        ({"x-amz-copy-source-if-match": '"etag1"'}, True),
        ({"x-amz-copy-source-if-match": '"other"'}, False),
        ({"x-amz-copy-source-if-none-match": '"etag1"'}, False),
        ({"x-amz-copy-source-if-none-match": '"other"'}, True),
        ({"x-amz-copy-source-if-modified-since": BEFORE}, True),
        ({"x-amz-copy-source-if-modified-since": AFTER}, False),
        ({"x-amz-copy-source-if-unmodified-since": AFTER}, True),
        ({"x-amz-copy-source-if-unmodified-since": BEFORE}, False),
        # AWS: if-match true + unmodified-since false -> copy
        ({"x-amz-copy-source-if-match": '"etag1"', "x-amz-copy-source-if-unmodified-since": BEFORE},
         True),
        # if-none-match false + modified-since true -> 412
        ({"x-amz-copy-source-if-none-match": '"etag1"',
          "x-amz-copy-source-if-modified-since": BEFORE}, False),
    ],
)
def test_copy_source_conditionals(headers, passes):
    check = source_check(headers)
    if passes:
        check(SRC)
    else:
        with pytest.raises(PreconditionFailed):
            check(SRC)


def test_no_copy_source_conditionals_means_no_check():
    assert source_check({"if-match": "x"}) is None
