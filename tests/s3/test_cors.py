"""CORS configuration parsing/rendering and rule matching (titans3.s3.cors).

Expected values follow the AWS documentation examples (PutBucketCors,
"Cross-origin resource sharing" user guide) and S3's recorded answers.
"""

from __future__ import annotations

import botocore.session
import pytest
from botocore.model import ServiceModel
from botocore.parsers import RestXMLParser

from titans3.core.errors import AccessForbidden, BadRequest, InvalidRequest, MalformedXML
from titans3.s3 import cors
from titans3.s3.cors import CORSRule

NS = "http://s3.amazonaws.com/doc/2006-03-01/"

# The PutBucketCors example of the AWS API reference.
AWS_EXAMPLE = b"""<CORSConfiguration>
 <CORSRule>
   <AllowedOrigin>http://www.example.com</AllowedOrigin>
   <AllowedMethod>PUT</AllowedMethod>
   <AllowedMethod>POST</AllowedMethod>
   <AllowedMethod>DELETE</AllowedMethod>
   <AllowedHeader>*</AllowedHeader>
   <MaxAgeSeconds>3000</MaxAgeSeconds>
   <ExposeHeader>x-amz-server-side-encryption</ExposeHeader>
 </CORSRule>
 <CORSRule>
   <AllowedOrigin>*</AllowedOrigin>
   <AllowedMethod>GET</AllowedMethod>
   <AllowedHeader>*</AllowedHeader>
   <MaxAgeSeconds>3000</MaxAgeSeconds>
 </CORSRule>
</CORSConfiguration>"""

MINIMAL = "<AllowedOrigin>https://example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


def config(*rules: str) -> bytes:
    body = "".join(f"<CORSRule>{r}</CORSRule>" for r in rules)
    return f'<CORSConfiguration xmlns="{NS}">{body}</CORSConfiguration>'.encode()


def rule(**kw: object) -> CORSRule:
    base: dict[str, object] = {"allowed_origins": ("*",), "allowed_methods": ("GET",)}
    base.update(kw)
    return CORSRule(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------- parsing
def test_parses_the_aws_documentation_example() -> None:
    rules = cors.parse_cors_configuration(AWS_EXAMPLE)
    assert rules == [
        CORSRule(("http://www.example.com",), ("PUT", "POST", "DELETE"), ("*",),
                 ("x-amz-server-side-encryption",), 3000, None),
        CORSRule(("*",), ("GET",), ("*",), (), 3000, None),
    ]  # fmt: skip


def test_render_then_parse_round_trips_and_botocore_reads_it() -> None:
    rules = cors.parse_cors_configuration(AWS_EXAMPLE) + [rule(id="a <&> b", allowed_origins=("",))]
    body = cors.render_cors_configuration(rules)
    assert cors.parse_cors_configuration(body) == rules
    model = ServiceModel(botocore.session.get_session().get_service_data("s3"))
    parsed = RestXMLParser().parse(
        {"body": body, "headers": {}, "status_code": 200},
        model.operation_model("GetBucketCors").output_shape,
    )
    assert parsed["CORSRules"][0]["AllowedMethods"] == ["PUT", "POST", "DELETE"]
    assert parsed["CORSRules"][0]["MaxAgeSeconds"] == 3000
    assert parsed["CORSRules"][2]["ID"] == "a <&> b"


def test_render_writes_elements_in_s3_order() -> None:
    body = cors.render_cors_configuration([
        CORSRule(("o",), ("GET",), ("h",), ("e",), 5, "id")
    ]).decode()  # fmt: skip
    assert body.endswith(
        "<CORSRule><ID>id</ID><AllowedMethod>GET</AllowedMethod><AllowedOrigin>o</AllowedOrigin>"
        "<AllowedHeader>h</AllowedHeader><MaxAgeSeconds>5</MaxAgeSeconds>"
        "<ExposeHeader>e</ExposeHeader></CORSRule></CORSConfiguration>"
    )


def test_storage_encoding_round_trips() -> None:
    rules = cors.parse_cors_configuration(AWS_EXAMPLE)
    assert list(cors.decode_rules(cors.encode_rules(rules))) == rules


def test_values_are_kept_verbatim_and_accepted_edge_values() -> None:
    rules = cors.parse_cors_configuration(config(
        "<AllowedOrigin> https://x.example\n</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
        "<MaxAgeSeconds>0042</MaxAgeSeconds><ID>" + "a" * 255 + "</ID>",
        "<AllowedOrigin></AllowedOrigin><AllowedMethod>HEAD</AllowedMethod>"
        "<MaxAgeSeconds>2147483647</MaxAgeSeconds>",
    ))  # fmt: skip
    assert rules[0].allowed_origins == (" https://x.example\n",)
    assert rules[0].max_age_seconds == 42
    assert rules[1].allowed_origins == ("",)
    assert rules[1].max_age_seconds == 2**31 - 1


def test_one_hundred_rules_are_accepted() -> None:
    assert len(cors.parse_cors_configuration(config(*[MINIMAL] * 100))) == 100


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        config(),
        config(*[MINIMAL] * 101),
        config("<AllowedMethod>GET</AllowedMethod>"),
        config("<AllowedOrigin>*</AllowedOrigin>"),
        config(MINIMAL + "<AllowedHeaders>*</AllowedHeaders>"),
        config(MINIMAL + "<MaxAgeSeconds>-1</MaxAgeSeconds>"),
        config(MINIMAL + "<MaxAgeSeconds>1.5</MaxAgeSeconds>"),
        config(MINIMAL + "<MaxAgeSeconds>2147483648</MaxAgeSeconds>"),
        config(MINIMAL + "<MaxAgeSeconds>1</MaxAgeSeconds><MaxAgeSeconds>1</MaxAgeSeconds>"),
        config(MINIMAL + "<ID>" + "a" * 256 + "</ID>"),
        config(MINIMAL + "<ID>a</ID><ID>b</ID>"),
        config(MINIMAL + "text"),
        f"<CORSRules><CORSRule>{MINIMAL}</CORSRule></CORSRules>".encode(),
        f"<!DOCTYPE x><CORSConfiguration><CORSRule>{MINIMAL}</CORSRule></CORSConfiguration>".encode(),
        # Structure is judged before values: a bad method in a rule with no origin.
        config("<AllowedMethod>PATCH</AllowedMethod>"),
    ],
)
def test_malformed_documents_are_malformed_xml(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        cors.parse_cors_configuration(body)


@pytest.mark.parametrize(
    ("rule_xml", "message"),
    [
        ("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod>",
         "Found unsupported HTTP method in CORS config. Unsupported method is PATCH"),
        ("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>get</AllowedMethod>",
         "Found unsupported HTTP method in CORS config. Unsupported method is get"),
        ("<AllowedOrigin>*</AllowedOrigin><AllowedMethod></AllowedMethod>",
         "Found unsupported HTTP method in CORS config. Unsupported method is "),
        ("<AllowedOrigin>http://*.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>",
         'AllowedOrigin "http://*.*" can not have more than one wildcard.'),
        (MINIMAL + "<AllowedHeader>x-*-*</AllowedHeader>",
         'AllowedHeader "x-*-*" can not have more than one wildcard.'),
        (MINIMAL + "<ExposeHeader>x-amz-*</ExposeHeader>",
         'ExposeHeader "x-amz-*" contains wildcard. We currently do not support wildcard for '
         "ExposeHeader."),
        # Methods are checked before origins within a rule.
        ("<AllowedOrigin>*.*</AllowedOrigin><AllowedMethod>TRACE</AllowedMethod>",
         "Found unsupported HTTP method in CORS config. Unsupported method is TRACE"),
    ],
)  # fmt: skip
def test_bad_values_are_invalid_request_with_s3_messages(rule_xml: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        cors.parse_cors_configuration(config(MINIMAL, rule_xml))
    assert err.value.message == message


# ------------------------------------------------------------------ matching
@pytest.mark.parametrize(
    ("pattern", "origin", "matches"),
    [
        ("*", "https://anything", True),
        ("https://example.com", "https://example.com", True),
        ("https://example.com", "https://example.com:8443", False),
        ("https://example.com", "https://EXAMPLE.com", False),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("*suffix", "foo.suffix", True),
        ("*suffix", "foo.suffix.get", False),
        ("start*end", "startend", True),
        ("start*end", "0start12end", False),
        ("prefix*", "prefix", True),
        ("prefix*", "bla.prefix", False),
        ("a*a", "a", False),
    ],
)
def test_origin_patterns_have_one_anchored_wildcard(pattern: str, origin: str, matches: bool) -> None:
    assert (cors.match_rule([rule(allowed_origins=(pattern,))], origin, "GET") is not None) is matches


@pytest.mark.parametrize(
    ("allowed", "requested", "matches"),
    [
        ((), [], True),
        ((), ["content-type"], False),
        (("Content-Type",), ["content-type"], True),
        (("x-amz-*",), ["x-amz-date", "x-amz-meta-a"], True),
        (("x-amz-*",), ["x-amz-date", "content-type"], False),
        (("*",), ["anything", "else"], True),
    ],
)
def test_requested_headers_must_all_be_allowed(
    allowed: tuple[str, ...], requested: list[str], matches: bool
) -> None:
    found = cors.match_rule([rule(allowed_headers=allowed)], "o", "GET", requested)
    assert (found is not None) is matches


def test_first_matching_rule_wins() -> None:
    exact = rule(id="exact", allowed_origins=("https://example.com",), allowed_methods=("GET", "PUT"))
    anyone = rule(id="any", allowed_methods=("GET", "HEAD"))
    assert cors.match_rule([exact, anyone], "https://example.com", "GET") is exact
    assert cors.match_rule([exact, anyone], "https://example.com", "HEAD") is anyone
    assert cors.match_rule([anyone, exact], "https://example.com", "GET") is anyone
    assert cors.match_rule([exact, anyone], "https://example.com", "DELETE") is None


# ----------------------------------------------------------------- preflight
RULES = [
    CORSRule(("https://example.com", "https://*.example.com"), ("GET", "PUT", "DELETE"),
             ("Content-Type", "x-amz-*"), ("ETag", "x-amz-request-id"), 3000, "site"),
    CORSRule(("*",), ("GET", "HEAD")),
]  # fmt: skip


def test_preflight_answers_with_the_matching_rule_in_s3_header_order() -> None:
    headers = cors.preflight(RULES, {
        "origin": "https://example.com", "access-control-request-method": "PUT",
        "access-control-request-headers": "Content-Type,X-Amz-Date ,  x-amz-meta-Name",
    }, "OBJECT")  # fmt: skip
    assert headers == [
        ("Access-Control-Allow-Origin", "https://example.com"),
        ("Access-Control-Allow-Methods", "GET, PUT, DELETE"),
        ("Access-Control-Allow-Headers", "content-type, x-amz-date, x-amz-meta-name"),
        ("Access-Control-Expose-Headers", "ETag, x-amz-request-id"),
        ("Access-Control-Max-Age", "3000"),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", VARY),
    ]


def test_preflight_wildcard_origin_answers_star_without_credentials() -> None:
    headers = cors.preflight(RULES, {"origin": "https://other.org",
                                     "access-control-request-method": "HEAD"}, "BUCKET")
    assert headers == [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, HEAD"),
        ("Vary", VARY),
    ]


@pytest.mark.parametrize(
    ("rules", "headers", "error", "message"),
    [
        (RULES, {}, BadRequest, "Insufficient information. Origin request header needed."),
        (RULES, {"origin": "", "access-control-request-method": "GET"}, BadRequest,
         "Insufficient information. Origin request header needed."),
        (None, {"origin": "o", "access-control-request-method": "GET"}, AccessForbidden,
         "CORSResponse: CORS is not enabled for this bucket."),
        (RULES, {"origin": "o"}, BadRequest, "Invalid Access-Control-Request-Method: null"),
        (RULES, {"origin": "o", "access-control-request-method": "PATCH"}, BadRequest,
         "Invalid Access-Control-Request-Method: PATCH"),
        (RULES, {"origin": "https://example.com", "access-control-request-method": "POST"},
         AccessForbidden, cors._NOT_ALLOWED),
        (RULES, {"origin": "https://example.org", "access-control-request-method": "GET",
                 "access-control-request-headers": "content-type"}, AccessForbidden,
         cors._NOT_ALLOWED),
    ],
)  # fmt: skip
def test_preflight_refusals(rules, headers, error, message) -> None:  # noqa: ANN001
    with pytest.raises(error) as err:
        cors.preflight(rules, headers, "OBJECT")
    assert err.value.message == message


def test_preflight_refusal_names_the_method_and_resource_type() -> None:
    with pytest.raises(AccessForbidden) as err:
        cors.preflight(RULES, {"origin": "https://nope", "access-control-request-method": "PUT"},
                       "OBJECT")  # fmt: skip
    assert err.value.extra == {"Method": "PUT", "ResourceType": "OBJECT"}
    with pytest.raises(AccessForbidden) as err:
        cors.preflight(None, {"origin": "o"}, "OBJECT")
    assert err.value.extra == {"Method": "OPTIONS", "ResourceType": "BUCKET"}


# ------------------------------------------------------------ actual requests
def test_actual_request_gets_the_rule_headers_or_none() -> None:
    assert cors.actual_headers(RULES, {"origin": "https://app.example.com"}, "DELETE")[:2] == [
        ("Access-Control-Allow-Origin", "https://app.example.com"),
        ("Access-Control-Allow-Methods", "GET, PUT, DELETE"),
    ]
    assert cors.actual_headers(RULES, {"origin": "https://example.org"}, "PUT") == []
    assert cors.actual_headers(None, {"origin": "https://example.com"}, "GET") == []
    assert cors.actual_headers(RULES, {}, "GET") == []


def test_actual_request_matches_the_announced_method_and_ignores_headers() -> None:
    only_get = [rule(allowed_origins=("foo.suffix",))]
    announced = {"origin": "foo.suffix", "access-control-request-method": "GET"}
    assert cors.actual_headers(only_get, announced, "PUT") != []
    assert cors.actual_headers(only_get, {"origin": "foo.suffix"}, "PUT") == []
    with_headers = {"origin": "foo.suffix", "access-control-request-headers": "x-not-allowed"}
    assert cors.actual_headers(only_get, with_headers, "GET") != []
