"""LifecycleConfiguration validation as AWS does it (titans3/s3/lifecycle_config.py)."""

from __future__ import annotations

import pytest

from titans3.core import lifecycle as lc
from titans3.core.errors import (
    InvalidArgument,
    InvalidRequest,
    InvalidStorageClass,
    MalformedXML,
)
from titans3.s3 import lifecycle_config

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def doc(*rules: str) -> bytes:
    return f"<LifecycleConfiguration {NS}>{''.join(rules)}</LifecycleConfiguration>".encode()


def rule(body: str, rid: str = "r1", status: str = "Enabled") -> str:
    return f"<Rule><ID>{rid}</ID><Status>{status}</Status>{body}</Rule>"


def test_parses_every_action_and_filter_and_renders_back() -> None:
    rules = lifecycle_config.parse(doc(
        rule("<Filter><And><Prefix>logs/</Prefix><Tag><Key>a</Key><Value>b</Value></Tag>"
             "<ObjectSizeGreaterThan>5</ObjectSizeGreaterThan></And></Filter>"
             "<Expiration><Days>3</Days></Expiration>"
             "<NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>"
             "<NewerNoncurrentVersions>4</NewerNoncurrentVersions></NoncurrentVersionExpiration>"),
        rule("<Filter><Prefix>tmp/</Prefix></Filter><AbortIncompleteMultipartUpload>"
             "<DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
             "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>",
             rid="r2"),
        rule("<Prefix>old/</Prefix><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>",
             rid="r3", status="Disabled"),
    ))
    a, b, c = rules
    assert (a.prefix, a.tags, a.size_gt, a.expiration_days, a.noncurrent_days, a.newer_noncurrent) == \
        ("logs/", {"a": "b"}, 5, 3, 2, 4)
    assert (b.abort_days, b.expired_delete_marker, b.prefix) == (1, True, "tmp/")
    assert not c.enabled and c.expiration_date_ns is not None
    again = lifecycle_config.parse(lifecycle_config.render(lc.dump(rules)))
    assert again == rules


@pytest.mark.parametrize(("body", "error"), [
    (rule("<Filter/>"), InvalidRequest),  # no action
    (rule("<Filter/><Expiration><Days>0</Days></Expiration>"), InvalidArgument),
    (rule("<Filter/><Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>"),
     MalformedXML),
    (rule("<Filter/><Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>"), InvalidArgument),
    (rule("<Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter><AbortIncompleteMultipartUpload>"
          "<DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>"),
     InvalidRequest),
    (rule("<Filter/><Expiration><Days>1</Days></Expiration>", status="On"), MalformedXML),
    (rule("<Filter/><Prefix>x</Prefix><Expiration><Days>1</Days></Expiration>"), MalformedXML),
    (rule("<Filter/><Transition><Days>1</Days><StorageClass>NOPE</StorageClass></Transition>"),
     InvalidRequest),
    (rule("<Filter/><Transition><Days>1</Days><StorageClass>STANDARD</StorageClass></Transition>"),
     InvalidRequest),
    (rule("<Filter/><Transition><StorageClass>GLACIER</StorageClass></Transition>"), MalformedXML),
    (rule("<Filter/><NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
          "<NewerNoncurrentVersions>101</NewerNoncurrentVersions></NoncurrentVersionExpiration>"),
     InvalidArgument),
    (rule("<Filter><And><ObjectSizeGreaterThan>10</ObjectSizeGreaterThan><ObjectSizeLessThan>5"
          "</ObjectSizeLessThan></And></Filter><Expiration><Days>1</Days></Expiration>"),
     InvalidArgument),
])
def test_refuses_what_aws_refuses(body: str, error: type) -> None:
    with pytest.raises(error):
        lifecycle_config.parse(doc(body))


def test_rule_ids_are_unique_and_generated_when_absent() -> None:
    with pytest.raises(InvalidArgument):
        lifecycle_config.parse(doc(rule("<Filter/><Expiration><Days>1</Days></Expiration>"),
                                   rule("<Filter/><Expiration><Days>2</Days></Expiration>")))
    (r,) = lifecycle_config.parse(doc("<Rule><Status>Enabled</Status><Filter/>"
                                      "<Expiration><Days>1</Days></Expiration></Rule>"))
    assert r.id
    with pytest.raises(MalformedXML):
        lifecycle_config.parse(doc())


def test_transitions_parse_repeat_render_back_and_must_be_mapped() -> None:
    body = doc(rule("<Filter/><Transition><Days>0</Days><StorageClass>STANDARD_IA</StorageClass>"
                    "</Transition><Transition><Date>2030-01-01T00:00:00Z</Date><StorageClass>"
                    "GLACIER_IR</StorageClass></Transition><NoncurrentVersionTransition>"
                    "<NoncurrentDays>3</NoncurrentDays><StorageClass>STANDARD_IA</StorageClass>"
                    "</NoncurrentVersionTransition>"))
    rules = lifecycle_config.parse(body, mapped={"STANDARD_IA", "GLACIER_IR"})
    r = rules[0]
    assert r.transitions[0] == [0, None, "STANDARD_IA"] and r.transitions[1][2] == "GLACIER_IR"
    assert r.noncurrent_transitions == [[3, "STANDARD_IA"]]
    again = lifecycle_config.parse(lifecycle_config.render(lc.dump(rules)))
    assert again[0].transitions == r.transitions
    assert again[0].noncurrent_transitions == r.noncurrent_transitions
    assert lc.transitions_of(lc.load(lc.dump(rules))[0], 0, 1.0)[0] == (0, "STANDARD_IA")
    with pytest.raises(InvalidStorageClass):
        lifecycle_config.parse(body, mapped={"STANDARD_IA"})
