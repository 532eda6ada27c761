"""Unit tests (in memory) for devhost's request limits, parse-error mapping, log escaping and host-setting checks."""

from __future__ import annotations

import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, InvalidHeader, LineTooLong

from devhost import HostSettings, HostSettingsError
from devhost.__main__ import describe
from devhost.accesslog import printable
from devhost.limits import (
    DEFAULT_MAX_REQUEST_BODY_BYTES,
    MAX_REQUEST_HEADER_COUNT,
    MAX_REQUEST_HEADERS_TOTAL_BYTES,
    MAX_REQUEST_LINE_BYTES,
    BodyLimit,
    BodyLimitError,
    header_section_bytes,
    parse_body_limit,
    request_line_bytes,
)
from devhost.protocol import PARSER_LIMITS, classify
from devhost.server import is_json_media_type


def test_the_limits_are_kestrels_defaults_and_the_hosts_body_limit():
    """dotnet/aspnetcore KestrelServerLimits.cs: 8 KB request line, 32 KB headers, 100 headers;
    Azure/azure-functions-host ScriptConstants.DefaultMaxRequestBodySize = 104857600."""
    assert (MAX_REQUEST_LINE_BYTES, MAX_REQUEST_HEADERS_TOTAL_BYTES, MAX_REQUEST_HEADER_COUNT) == (8192, 32768, 100)
    assert DEFAULT_MAX_REQUEST_BODY_BYTES == 104_857_600
    assert PARSER_LIMITS["max_line_size"] != PARSER_LIMITS["max_field_size"]  # how classify() tells them apart


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, BodyLimit(104_857_600)),
        ("", BodyLimit(104_857_600)),
        ("17408", BodyLimit(17408)),
        (" 0 ", BodyLimit(0)),
        ("16k", BodyLimit(104_857_600, ignored_value=True)),  # long.TryParse fails: the host keeps its default
        ("1e6", BodyLimit(104_857_600, ignored_value=True)),
    ],
)
def test_the_body_limit_setting_is_read_as_the_host_reads_it(value, expected):
    assert parse_body_limit(value) == expected


def test_a_negative_body_limit_is_refused():
    with pytest.raises(BodyLimitError, match="FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"):
        parse_body_limit("-1")
    with pytest.raises(HostSettingsError):
        HostSettings(max_request_body_bytes=-1)


def test_sizes_are_counted_as_kestrel_counts_them():
    assert request_line_bytes("GET", "/api/x?a=1", (1, 1)) == len(b"GET /api/x?a=1 HTTP/1.1\r\n")
    headers = [(b"Host", b"127.0.0.1"), (b"Authorization", b"Bearer abc")]
    assert header_section_bytes(headers) == len(b"Host: 127.0.0.1\r\nAuthorization: Bearer abc\r\n")


@pytest.mark.parametrize(
    "error, status, code",
    [
        (LineTooLong(b"GET /aaaa...", PARSER_LIMITS["max_line_size"]), 414, "request_line_too_long"),
        (LineTooLong(b"Bearer eyJ...", PARSER_LIMITS["max_field_size"]), 431, "request_headers_too_large"),
        (BadHttpMessage("Too many headers received"), 431, "too_many_request_headers"),
        (InvalidHeader(b"secret\x00"), 400, "malformed_request"),
        (BadHttpMethod("\x16\x03"), 400, "malformed_request"),
        (None, 400, "malformed_request"),
    ],
)
def test_parse_errors_map_to_kestrels_status_codes_and_never_quote_the_request(error, status, code):
    rejection = classify(error)
    assert (rejection.status, rejection.code) == (status, code)
    body = rejection.response().body
    assert isinstance(body, bytes) and b"eyJ" not in body and b"secret" not in body and b"aaaa" not in body


@pytest.mark.parametrize(
    "text, logged",
    [
        ("/api/hello/ada", "/api/hello/ada"),
        ("/x%0D%0AFAKE%00", "/x%0D%0AFAKE%00"),  # the raw path stays percent-encoded: nothing to escape
        ("/x\r\nFAKE", "/x\\x0d\\x0aFAKE"),
        ("/x\x00y", "/x\\x00y"),
        ("/\x1b[31mred", "/\\x1b[31mred"),  # no terminal escape sequences either
        ("/caf\u00e9/\u2028/\U0001f600", "/caf\\xe9/\\u2028/\\U0001f600"),
        ("/back\\slash", "/back\\x5cslash"),  # a literal backslash cannot fake an escape
    ],
)
def test_printable_leaves_one_line_of_plain_ascii(text, logged):
    assert printable(text) == logged
    assert printable(text).isascii() and printable(text).isprintable()


@pytest.mark.parametrize(
    "content_type, accepted",
    [
        ("application/json", True),
        ("text/json", True),
        ("application/problem+json", True),
        ("APPLICATION/JSON", True),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data", False),
        ("text/plain", False),
        ("application/octet-stream", False),  # what aiohttp reports when there is no Content-Type
        ("text/plain+json", False),
        ("application/xml", False),  # the host also has an XML formatter; devhost does not emulate it
    ],
)
def test_the_admin_api_reads_the_media_types_the_hosts_json_formatter_reads(content_type, accepted):
    assert is_json_media_type(content_type) is accepted


@pytest.mark.parametrize("origins", [("*",), ("https://a.example", "*")])
def test_cors_any_origin_with_credentials_is_refused(origins):
    with pytest.raises(HostSettingsError, match=r"credentials"):
        HostSettings(cors_origins=origins, cors_credentials=True)
    assert HostSettings(cors_origins=origins).cors_origins == origins  # without credentials it is allowed
    assert HostSettings(cors_origins=("https://a.example",), cors_credentials=True).cors_credentials


@pytest.mark.parametrize(
    "listen_host, settings, warning",
    [
        ("127.0.0.1", HostSettings(), None),
        ("::1", HostSettings(), None),
        ("0.0.0.0", HostSettings(), "so other machines can call these functions. Function or admin keys are not set"),
        ("0.0.0.0", HostSettings(function_key="f", master_key="m"), "so other machines can call these functions.\n"),
    ],
)
def test_the_banner_warns_when_devhost_listens_beyond_loopback(sample_module, capsys, listen_host, settings, warning):
    describe(sample_module.app, settings, "http://h:1", listen_host)
    banner = capsys.readouterr().err
    if warning is None:
        assert "WARNING: listening" not in banner
    else:
        assert f"WARNING: listening on {listen_host}, {warning}" in banner
