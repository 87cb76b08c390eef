"""XML of versioning, version listing, batch delete, tagging, upload listing, part copy."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from titans3.core.errors import MalformedXML
from titans3.s3 import xml_objects as xo
from titans3.s3.xml import Owner

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
OWNER = Owner("abc", "titans3")


def parse(doc: bytes) -> ET.Element:
    root = ET.fromstring(doc)
    for el in root.iter():
        el.tag = el.tag.replace(NS, "")
    return root


# ---------------------------------------------------------------- versioning
@pytest.mark.parametrize(
    ("body", "want"),
    [
        (b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
         ("Enabled", None)),
        (b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
         b"<Status>Suspended</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>",
         ("Suspended", "Disabled")),
        (b"<VersioningConfiguration/>", (None, None)),
    ],
)
def test_versioning_configuration_parses(body, want):
    assert xo.parse_versioning_configuration(body) == want


@pytest.mark.parametrize(
    "body",
    [
        b"<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>",
        b"<VersioningConfiguration><Status>Off</Status></VersioningConfiguration>",
        b"<VersioningConfiguration><Status>Enabled</Status><Status>Enabled</Status>"
        b"</VersioningConfiguration>",
        b"<VersioningConfiguration><MfaDelete>Maybe</MfaDelete></VersioningConfiguration>",
        b"<Versioning><Status>Enabled</Status></Versioning>",
        b"not xml",
    ],
)
def test_bad_versioning_configuration_is_malformed_xml(body):
    with pytest.raises(MalformedXML):
        xo.parse_versioning_configuration(body)


def test_versioning_configuration_has_no_status_until_configured():
    assert parse(xo.versioning_configuration("")).find("Status") is None
    assert parse(xo.versioning_configuration("Enabled")).findtext("Status") == "Enabled"


# ----------------------------------------------------------- version listing
def test_list_versions_result_shape_and_url_encoding():
    page = xo.VersionsListing(
        bucket="bkt", prefix="a b/", key_marker="", version_id_marker="", max_keys=2,
        is_truncated=True, owner=OWNER, delimiter="/", encoding_type="url",
        next_key_marker="a b/k+1", next_version_id_marker="v1",
        entries=[
            xo.VersionEntry("a b/k+1", "v2", True, 1_000_000_000, etag="e", size=3,
                            checksum_algorithms=("CRC32",)),
            xo.VersionEntry("a b/k+1", "v1", False, 2_000_000_000, delete_marker=True),
        ],
        prefixes=["a b/sub/"],
    )
    root = parse(xo.list_versions_result(page))
    assert root.tag == "ListVersionsResult"
    assert root.findtext("Prefix") == "a%20b/" and root.findtext("NextKeyMarker") == "a%20b/k%2B1"
    assert root.findtext("NextVersionIdMarker") == "v1" and root.findtext("IsTruncated") == "true"
    version, marker = root.find("Version"), root.find("DeleteMarker")
    assert version.findtext("ETag") == '"e"' and version.findtext("Size") == "3"
    assert version.findtext("IsLatest") == "true" and version.findtext("ChecksumAlgorithm") == "CRC32"
    assert marker.findtext("VersionId") == "v1" and marker.find("ETag") is None
    assert marker.find("Owner/ID").text == "abc"
    assert root.findtext("CommonPrefixes/Prefix") == "a%20b/sub/"
    assert root.findtext("EncodingType") == "url"


# -------------------------------------------------------------- batch delete
def test_delete_body_parses_keys_versions_and_quiet_preserving_whitespace():
    body = (b"<Delete><Quiet>TRUE</Quiet><Object><Key> spaced key </Key></Object>"
            b"<Object><Key>k</Key><VersionId>v1</VersionId></Object></Delete>")
    objects, quiet = xo.parse_delete(body)
    assert quiet is True
    assert objects == [xo.ObjectToDelete(" spaced key "), xo.ObjectToDelete("k", "v1")]


def test_delete_body_notes_per_object_conditions():
    objects, quiet = xo.parse_delete(b"<Delete><Object><Key>k</Key><ETag>x</ETag></Object></Delete>")
    assert objects[0].conditions == ("ETag",) and quiet is False


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete></Delete>",
        b"<Delete><Object><VersionId>v</VersionId></Object></Delete>",
        b"<Delete><Quiet>yes</Quiet><Object><Key>k</Key></Object></Delete>",
        b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
        b"<Remove><Object><Key>k</Key></Object></Remove>",
        b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
    ],
)
def test_bad_delete_bodies_are_malformed_xml(body):
    with pytest.raises(MalformedXML):
        xo.parse_delete(body)


def test_delete_of_exactly_1000_objects_parses():
    objects, _ = xo.parse_delete(b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1000 + b"</Delete>")
    assert len(objects) == 1000


def test_delete_result_lists_deleted_and_errors_and_quiet_only_errors():
    results = [
        xo.Deleted("a"),
        xo.Deleted("b", None, True, "m1"),
        xo.Deleted("c", "v1", True, "v1"),
        xo.DeleteError("d", "InternalError", "boom", "v2"),
    ]
    root = parse(xo.delete_result(results, quiet=False))
    deleted = root.findall("Deleted")
    assert [d.findtext("Key") for d in deleted] == ["a", "b", "c"]
    assert deleted[0].find("DeleteMarker") is None
    assert deleted[1].findtext("DeleteMarkerVersionId") == "m1" and deleted[1].find("VersionId") is None
    assert deleted[2].findtext("VersionId") == "v1" and deleted[2].findtext("DeleteMarker") == "true"
    assert root.findtext("Error/Code") == "InternalError" and root.findtext("Error/VersionId") == "v2"
    quiet = parse(xo.delete_result(results, quiet=True))
    assert quiet.findall("Deleted") == [] and len(quiet.findall("Error")) == 1


# ------------------------------------------------------------------- tagging
def test_tagging_round_trips_in_order_with_empty_values():
    tags = {"b": "2", "a": "", "ü": "<&>"}
    assert xo.parse_tagging(xo.tagging(tags)) == list(tags.items())


@pytest.mark.parametrize(
    "body",
    [
        b"<Tagging></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value><Value>w</Value></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet/><TagSet/></Tagging>",
        b"<Tags><TagSet/></Tags>",
    ],
)
def test_bad_tagging_bodies_are_malformed_xml(body):
    with pytest.raises(MalformedXML):
        xo.parse_tagging(body)


def test_empty_tag_set_is_valid():
    assert xo.parse_tagging(b"<Tagging><TagSet/></Tagging>") == []


# ------------------------------------------------------- uploads, part copy
def test_list_multipart_uploads_result_shape():
    page = xo.UploadsListing(
        bucket="bkt", key_marker="", upload_id_marker="", max_uploads=10, is_truncated=False,
        owner=OWNER, uploads=[xo.UploadEntry("k", "u1", 1_500_000_000)], prefixes=["p/"],
        delimiter="/",
    )
    root = parse(xo.list_multipart_uploads_result(page))
    assert root.findtext("Bucket") == "bkt" and root.findtext("MaxUploads") == "10"
    assert root.findtext("Upload/UploadId") == "u1"
    assert root.findtext("Upload/Initiated") == "1970-01-01T00:00:01.500Z"
    assert root.findtext("Upload/Initiator/ID") == "abc"
    assert root.findtext("CommonPrefixes/Prefix") == "p/"


def test_copy_part_result_shape():
    root = parse(xo.copy_part_result(etag="e", mtime_ns=0, checksums={"CRC32": "x"}))
    assert root.tag == "CopyPartResult" and root.findtext("ETag") == '"e"'
    assert root.findtext("ChecksumCRC32") == "x"
