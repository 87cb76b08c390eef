"""GetObjectAttributes: which attributes, and AWS's response shape (rendering is pure)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from titans3.core.errors import InvalidArgument, InvalidRequest
from titans3.objects.types import ObjectInfo, PartInfo
from titans3.s3.handlers_attributes import render, requested_attributes

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _tree(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    for el in root.iter():
        el.tag = el.tag.replace(NS, "")
    return root


def test_attribute_names_are_checked_and_put_in_awss_order():
    assert requested_attributes("ObjectSize, etag,Checksum") == ["ETag", "Checksum", "ObjectSize"]
    with pytest.raises(InvalidArgument):
        requested_attributes("ETag,Colour")
    with pytest.raises(InvalidRequest):
        requested_attributes(None)
    with pytest.raises(InvalidRequest):
        requested_attributes(" , ")


def test_a_composite_checksum_loses_its_part_count_and_parts_page_like_list_parts():
    parts = tuple(PartInfo(n, 5 << 20, f"{n:032x}", 0, {"SHA256": f"part{n}="}) for n in (1, 2, 3))
    info = ObjectInfo("b", "k", "null", 15 << 20, "abc-3", 0, checksums={"SHA256": "whole=-3"},
                      parts_count=3, parts=parts)  # fmt: skip
    root = _tree(render(info, ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
                        max_parts=2, marker=0))  # fmt: skip
    assert root.tag == "GetObjectAttributesResponse"
    assert [c.tag for c in root] == ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
    assert root.findtext("ETag") == "abc-3"
    assert root.findtext("Checksum/ChecksumSHA256") == "whole="
    assert root.findtext("Checksum/ChecksumType") == "COMPOSITE"
    op = root.find("ObjectParts")
    assert (op.findtext("PartsCount"), op.findtext("MaxParts"), op.findtext("IsTruncated"),
            op.findtext("NextPartNumberMarker")) == ("3", "2", "true", "2")  # fmt: skip
    assert [(p.findtext("PartNumber"), p.findtext("ChecksumSHA256")) for p in op.findall("Part")] == [
        ("1", "part1="), ("2", "part2=")]
    assert root.findtext("StorageClass") == "STANDARD"
    assert root.findtext("ObjectSize") == str(15 << 20)
    rest = _tree(render(info, ["ObjectParts"], max_parts=2, marker=2)).find("ObjectParts")
    assert [p.findtext("PartNumber") for p in rest.findall("Part")] == ["3"]
    assert rest.findtext("IsTruncated") == "false"


def test_a_single_part_object_has_no_object_parts_and_a_full_object_checksum():
    info = ObjectInfo("b", "k", "null", 3, "e", 0, checksums={"CRC32": "AAAAAA=="})
    root = _tree(render(info, ["Checksum", "ObjectParts"], max_parts=1000, marker=0))
    assert root.find("ObjectParts") is None
    assert root.findtext("Checksum/ChecksumType") == "FULL_OBJECT"
