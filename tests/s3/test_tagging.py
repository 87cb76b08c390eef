"""Tag-set documents (titans3.s3.tagging), against the AWS PutBucketTagging example."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.model import ServiceModel
from botocore.parsers import RestXMLParser

from titans3.core.errors import BadRequest, InvalidTag, MalformedXML
from titans3.s3 import tagging

# The PutBucketTagging example of the AWS API reference.
AWS_EXAMPLE = b"""<Tagging>
  <TagSet>
    <Tag>
      <Key>Project</Key>
      <Value>Project One</Value>
    </Tag>
    <Tag>
      <Key>User</Key>
      <Value>jsmith</Value>
    </Tag>
  </TagSet>
</Tagging>"""


def doc(*tags: tuple[str, str]) -> bytes:
    body = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in tags)
    return f"<Tagging><TagSet>{body}</TagSet></Tagging>".encode()


def test_parses_the_aws_documentation_example() -> None:
    assert tagging.parse_tagging(AWS_EXAMPLE) == [("Project", "Project One"), ("User", "jsmith")]


def test_render_is_what_botocore_reads_and_round_trips() -> None:
    tags = [("Project", "Project One"), ("ключ", "значение"), ("a+b=c", "")]
    body = tagging.render_tagging(tags)
    assert tagging.parse_tagging(body) == tags
    model = ServiceModel(botocore.session.get_session().get_service_data("s3"))
    parsed = RestXMLParser().parse(
        {"body": body, "headers": {}, "status_code": 200},
        model.operation_model("GetBucketTagging").output_shape,
    )
    assert parsed["TagSet"] == [{"Key": k, "Value": v} for k, v in tags]
    assert tagging.decode_tags(tagging.encode_tags(tags)) == tags


def test_empty_tag_set_is_valid() -> None:
    assert tagging.parse_tagging(b"<Tagging><TagSet/></Tagging>") == []


def test_fifty_bucket_tags_allowed_fifty_one_refused() -> None:
    fifty = [(f"k{i}", "v") for i in range(50)]
    assert len(tagging.parse_tagging(doc(*fifty))) == 50
    with pytest.raises(BadRequest) as err:
        tagging.parse_tagging(doc(*fifty, ("k50", "v")))
    assert err.value.message == "Bucket tags cannot be greater than 50"
    with pytest.raises(InvalidTag) as err:  # AWS: InvalidTag for an object's eleventh tag
        tagging.parse_tagging(doc(*fifty[:11]), limit=tagging.OBJECT_TAG_LIMIT, what="Object")
    assert err.value.message == "Object tags cannot be greater than 10"


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ((("", "v"),), "The TagKey you have provided is invalid"),
        ((("k" * 129, "v"),), "The TagKey you have provided is invalid"),
        ((("a*b", "v"),), "The TagKey you have provided is invalid"),
        ((("k", "v" * 257),), "The TagValue you have provided is invalid"),
        ((("k", "a;b"),), "The TagValue you have provided is invalid"),
        ((("k", "1"), ("k", "2")), "Cannot provide multiple Tags with the same key"),
        ((("aws:cost", "1"),), "Your TagKey cannot be prefixed with aws:"),
    ],
)
def test_invalid_tags_are_invalid_tag(tags: tuple[tuple[str, str], ...], message: str) -> None:
    with pytest.raises(InvalidTag) as err:
        tagging.parse_tagging(doc(*tags))
    assert err.value.message == message


def test_lengths_count_utf16_units_like_s3() -> None:
    assert tagging.valid_tag_text("k" * 128, 1, 128)
    # A letter outside the BMP counts twice.
    assert not tagging.valid_tag_text("k" * 127 + "\U00010400", 1, 128)
    assert tagging.valid_tag_text("Ünïcödé 数字 ١٢٣ +-=._:/@", 0, 256)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<Tagging/>",
        b"<Tagging><TagSet/><TagSet/></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key><Key>j</Key><Value>v</Value></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value><Extra/></Tag></TagSet></Tagging>",
        b"<Tags><TagSet/></Tags>",
    ],
)
def test_malformed_tagging_documents(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        tagging.parse_tagging(body)
