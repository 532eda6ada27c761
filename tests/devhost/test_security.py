"""Issue 11, items 5 and 6: the attacks on the local host, replayed over real sockets; each must now fail.

References for the behaviour pinned here (facts, not code):
- Kestrel's limits, which the Functions host keeps except the body limit: request line 8,192 bytes
  (414), header lines 32,768 bytes in total (431), 100 headers (431) (dotnet/aspnetcore,
  src/Servers/Kestrel/Core/src/KestrelServerLimits.cs and BadHttpRequestException.GetException;
  Http1Connection.TakeStartLine/TakeMessageHeaders count the request line with its CRLF and every
  header line with its CRLF); the host sets only MaxRequestBodySize (Azure/azure-functions-host,
  src/WebJobs.Script.WebHost/Program.cs at 89dc438d).
- FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: the host's body limit in bytes, default 104,857,600
  (Microsoft Learn, "App settings reference for Azure Functions"; the host reads it with
  long.TryParse in Middleware/HttpRequestBodySizeMiddleware.cs).
- POST /admin/functions/{name} binds [FromBody] FunctionInvocation (Azure/azure-functions-host,
  src/WebJobs.Script.WebHost/Controllers/FunctionsController.cs): 415 for a body no JSON formatter
  reads, 400 when nothing bound, then 404 for an unknown name; Microsoft Learn, "Manually run a
  non HTTP-triggered function", sends Content-Type: application/json.
- CORS: Azure refuses supportCredentials while allowed origins include "*" (Microsoft Learn,
  "Tutorial: Host a RESTful API with CORS in Azure App Service"); the host's CorsOptionsSetup
  builds an ASP.NET Core policy, and CorsPolicyBuilder.Build() throws for any origin with credentials.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.devhost.conftest import ROOT, RawAnswer, raw_http, run_devhost_until_exit, sample_dir, start_devhost

pytestmark = pytest.mark.integration  # devhost subprocesses on loopback, raw sockets

TIMEOUT = 10
BODY_LIMIT = 17408  # what local.settings.sample.json sets; the host fixture sets it the same way
SECRET = "s3cr3t-token-part"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """The sample app as under ``make run``: no keys, CORS for one origin, the sample's body limit from local.settings.json."""
    app_dir = sample_dir(
        tmp_path_factory.mktemp("sample"),
        local_settings={
            "Values": {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(BODY_LIMIT), "SAMPLE_SCHEDULE": "0 0 * * * *"},
            "Host": {"CORS": "https://app.example.com"},
        },
    )
    marker = app_dir / "marker.log"
    running = start_devhost(app_dir, {"SAMPLE_MARKER_FILE": str(marker)})
    running.marker = marker
    yield running
    assert running.stop() == 0


def get(target: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def header_lines_bytes(headers: list[tuple[str, str]]) -> int:
    """What Kestrel counts against MaxRequestHeadersTotalSize: every ``Name: value`` line with its CRLF."""
    return sum(len(f"{name}: {value}\r\n") for name, value in headers)


def bearer_headers(total: int) -> list[tuple[str, str]]:
    """Host, Connection and an Authorization bearer token, padded so the header lines are exactly ``total`` bytes."""
    base = [("Host", "127.0.0.1"), ("Connection", "close")]
    prefix = f"Bearer eyJhbGciOiJSUzI1NiJ9.{SECRET}."
    room = total - header_lines_bytes(base) - len("Authorization: \r\n")
    return [*base, ("Authorization", prefix + "A" * (room - len(prefix)))]


def assert_quiet_json_rejection(answer: RawAnswer, status: int, code: str) -> None:
    assert answer.status == status, answer.raw[:300]
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]["code"] == code
    assert len(answer.body) < 200  # short, and nothing of the request in it
    for fragment in (SECRET, "eyJ", "Bearer"):
        assert fragment.encode() not in answer.raw


def assert_one_quiet_log_line(lines: list[str], status: int) -> None:
    assert len(lines) == 1, lines
    assert f" {status} " in lines[0], lines  # "rejected a request from IP: 431 code" or "METHOD /path 400 1.0ms"
    for fragment in ("Traceback", SECRET, "eyJ", "Bearer", "ERROR"):
        assert fragment not in lines[0], lines


# ----------------------------------------------------------------- item 5: headers over the limits


def test_an_oversized_bearer_header_gets_a_short_json_431_and_one_log_line_without_the_token(host):
    """The attack: a 40 KB Authorization header. Before: ERROR + traceback quoting ``Bearer eyJ...``, echoed in a 400."""
    answers: list[RawAnswer] = []
    lines = host.log_lines_during(lambda: answers.append(raw_http(host.url, get("/api/headers", bearer_headers(40_000)))))
    assert_quiet_json_rejection(answers[0], 431, "request_headers_too_large")
    assert_one_quiet_log_line(lines, 431)


def test_a_large_entra_token_within_the_hosts_limits_reaches_the_function(host):
    """A 30 KB bearer token (Entra ID tokens with many group claims) is fine for the Functions host, so here too."""
    headers = bearer_headers(30_000)
    answer = raw_http(host.url, get("/api/headers", headers))
    assert answer.status == 200, answer.raw[:300]
    assert answer.json()["authorization_length"] == len(headers[-1][1]) > 29_000


@pytest.mark.parametrize("total, status", [(32_768, 200), (32_769, 431)])
def test_the_header_section_limit_is_kestrels_32_kib_in_total(host, total, status):
    headers = bearer_headers(total)
    assert header_lines_bytes(headers) == total
    answer = raw_http(host.url, get("/api/headers", headers))
    assert answer.status == status, answer.raw[:300]
    if status == 431:
        assert_quiet_json_rejection(answer, 431, "request_headers_too_large")


@pytest.mark.parametrize("line_bytes, status", [(8_192, 200), (8_193, 414), (9_000, 414)])
def test_the_request_line_limit_is_kestrels_8_kib(host, line_bytes, status):
    """METHOD SP target SP HTTP/1.1 CRLF; 9,000 bytes is refused by the parser itself, 8,193 after parsing."""
    room = line_bytes - len("GET  HTTP/1.1\r\n") - len("/api/hello/")
    target = "/api/hello/" + "a" * room
    assert len(f"GET {target} HTTP/1.1\r\n") == line_bytes
    answer = raw_http(host.url, get(target, [("Host", "127.0.0.1"), ("Connection", "close")]))
    assert answer.status == status, answer.raw[:300]
    if status == 414:
        assert_quiet_json_rejection(answer, 414, "request_line_too_long")


@pytest.mark.parametrize("count, status", [(100, 200), (101, 431), (150, 431)])  # 150: refused by the parser itself
def test_at_most_100_headers_as_kestrel(host, count, status):
    headers = [("Host", "127.0.0.1"), ("Connection", "close"), *((f"X-H{i}", "v") for i in range(count - 2))]
    answer = raw_http(host.url, get("/api/headers", headers))
    assert answer.status == status, answer.raw[:300]
    if status == 431:
        assert_quiet_json_rejection(answer, 431, "too_many_request_headers")
    else:
        assert answer.json()["count"] == count


# ----------------------------------------------------------------- item 5: malformed requests

MALFORMED = {
    "bad method": f"G@T /{SECRET} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "space in a header name": f"GET / HTTP/1.1\r\nHost: x\r\nBad Header: {SECRET}\r\n\r\n".encode(),
    "NUL in a header value": f"GET / HTTP/1.1\r\nHost: x\r\nX-A: {SECRET}\x00x\r\n\r\n".encode(),
    "Content-Length not a number": f"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {SECRET}\r\n\r\n".encode(),
    "two Content-Lengths": b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "bad chunk size": f"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{SECRET}\r\n".encode(),
    "TLS on the HTTP port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + SECRET.encode(),
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_gets_a_json_400_and_one_log_line_without_traceback_or_echo(host, request_bytes):
    answers: list[RawAnswer] = []
    lines = host.log_lines_during(lambda: answers.append(raw_http(host.url, request_bytes)))
    answer = answers[0]
    assert answer.status == 400, answer.raw[:300]
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]["code"] in {"malformed_request", "malformed_body"}
    assert SECRET.encode() not in answer.raw
    assert_one_quiet_log_line(lines, 400)


@pytest.mark.parametrize(
    "head",
    [
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
        b"POST /admin/functions/tick HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99\r\n\r\n{",
    ],
    ids=["content-length", "chunked", "admin API"],
)
def test_an_upload_abandoned_half_way_costs_one_log_line_and_no_traceback(host, head):
    def abandon() -> None:
        address = urlsplit(host.url)
        with socket.create_connection((address.hostname, address.port), timeout=TIMEOUT) as sock:
            sock.sendall(head)
            sock.shutdown(socket.SHUT_WR)  # the client goes away with its body incomplete
            sock.recv(65536)  # whatever the server does, wait for it to be done with this connection

    lines = host.log_lines_during(abandon)
    assert len(lines) == 1 and " 400 " in lines[0], lines
    assert "Traceback" not in host.log


@pytest.mark.parametrize("bad_host", [b"x:99999", b"\xff\xfe"], ids=["port out of range", "not IDNA"])
def test_a_host_header_that_does_not_parse_is_a_json_400_not_a_traceback(host, bad_host):
    """Kestrel answers 400 (InvalidHostHeader); devhost used to log a traceback and answer 500."""
    answers: list[RawAnswer] = []
    request = b"GET /api/hello/x HTTP/1.1\r\nHost: " + bad_host + b"\r\nConnection: close\r\n\r\n"
    lines = host.log_lines_during(lambda: answers.append(raw_http(host.url, request)))
    assert_quiet_json_rejection(answers[0], 400, "invalid_host")
    assert_one_quiet_log_line(lines, 400)


def test_a_flood_of_malformed_requests_costs_one_log_line_each(host):
    """Before: every malformed request logged a ~10-line traceback an anonymous caller could use to spam the log."""
    count = 40

    def flood() -> None:
        for index in range(count):
            assert raw_http(host.url, list(MALFORMED.values())[index % len(MALFORMED)]).status == 400

    lines = host.log_lines_during(flood)
    assert len(lines) == count
    assert not [line for line in lines if "Traceback" in line or SECRET in line]


# ----------------------------------------------------------------- item 6: the access log


def test_the_path_cannot_forge_a_log_line_or_write_a_nul(host):
    target = "/api/hello/x%0D%0A2026-01-01%2000:00:00,000%20INFO%20devhost:%20FAKE%20200%00%0A"
    lines = host.log_lines_during(lambda: raw_http(host.url, get(target, [("Host", "x"), ("Connection", "close")])))
    assert lines == [lines[0]] and lines[0].rstrip("\n").endswith("ms")  # one line, ending where an access line ends
    assert "GET /api/hello/x%0D%0A2026-01-01%2000:00:00,000%20INFO%20devhost:%20FAKE%20200%00%0A 200" in lines[0]
    assert "\x00" not in host.log and "\r" not in host.log
    assert not [line for line in host.log.splitlines() if "FAKE" in line and "%20FAKE" not in line]


def test_the_access_log_still_has_no_query_string(host):
    lines = host.log_lines_during(lambda: requests.get(host.url + "/api/hello/q?code=k3y&token=t0k", timeout=TIMEOUT))
    assert len(lines) == 1 and "GET /api/hello/q 200" in lines[0]
    assert "k3y" not in lines[0] and "t0k" not in lines[0]


# ----------------------------------------------------------------- item 6: the admin API

FORM_POSTS = {  # what an HTML form (or a no-preflight fetch) on any web page can send cross-site
    "urlencoded form": ("application/x-www-form-urlencoded", b"input=x"),
    "multipart form": (
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="input"\r\n\r\nx\r\n--b--\r\n',
    ),
    "text/plain": ("text/plain", b'{"input": "x"}'),
    "no content type": (None, b'{"input": "x"}'),
}


@pytest.mark.parametrize("content_type, body", FORM_POSTS.values(), ids=FORM_POSTS.keys())
def test_a_cross_site_form_post_cannot_run_a_function(host, content_type, body):
    """The attack: any web page posts to http://127.0.0.1:7071/admin/functions/<name> (no key is set under make run)."""
    before = host.marker.read_text() if host.marker.exists() else ""
    headers = {"Origin": "https://evil.example"}
    if content_type:
        headers["Content-Type"] = content_type
    response = requests.post(host.url + "/admin/functions/tick", data=body, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 415
    assert (host.marker.read_text() if host.marker.exists() else "") == before  # the timer did not run
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "text/json", "application/vnd.ops+json"]
)
def test_the_admin_api_runs_a_function_for_a_json_body(host, content_type):
    response = requests.post(
        host.url + "/admin/functions/work", data=b'{"input": "job-7"}', headers={"Content-Type": content_type}, timeout=TIMEOUT
    )
    assert response.status_code == 202
    assert "work job-7\n" in host.marker.read_text()


@pytest.mark.parametrize("body, status", [(b"", 400), (b"[]", 400), (b'"x"', 400), (b"{", 400), (b"{}", 202)])
def test_the_admin_api_needs_a_json_object_as_the_host_does(host, body, status):
    response = requests.post(
        host.url + "/admin/functions/tick", data=body, headers={"Content-Type": "application/json"}, timeout=TIMEOUT
    )
    assert response.status_code == status
    unknown = requests.post(
        host.url + "/admin/functions/nope", data=body, headers={"Content-Type": "application/json"}, timeout=TIMEOUT
    )
    assert unknown.status_code == (404 if status == 202 else status)  # the body is bound before the name is looked up


# ----------------------------------------------------------------- item 6: CORS "*" with credentials


@pytest.mark.parametrize(
    "env, host_section",
    [
        ({"DEVHOST_CORS": "*", "DEVHOST_CORS_CREDENTIALS": "true"}, {}),
        ({}, {"CORS": "*", "CORSCredentials": True}),
        ({"DEVHOST_CORS_CREDENTIALS": "true"}, {"CORS": "https://app.example.com,*"}),
    ],
    ids=["environment", "local.settings.json", "a list with *"],
)
def test_cors_for_any_origin_with_credentials_is_refused_at_start_up(tmp_path, env, host_section):
    """Before: it reflected any Origin with Access-Control-Allow-Credentials: true."""
    app_dir = sample_dir(tmp_path, local_settings={"Values": {"SAMPLE_SCHEDULE": "0 0 * * * *"}, "Host": host_section})
    result = run_devhost_until_exit(app_dir, env)
    assert result.returncode == 2
    assert "DEVHOST_URL=" not in result.stdout
    assert "any origin (*) together with credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_cors_for_any_origin_without_credentials_still_starts(tmp_path):
    running = start_devhost(sample_dir(tmp_path), {"DEVHOST_CORS": "*"})
    try:
        answer = requests.get(running.url + "/api/hello/a", headers={"Origin": "https://x.example"}, timeout=TIMEOUT)
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in answer.headers
    finally:
        running.stop()


# ----------------------------------------------------------------- item 6: the body limit


def post_echo(length: int) -> bytes:
    head = f"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    return head.encode()


@pytest.mark.parametrize("length, status", [(BODY_LIMIT, 201), (BODY_LIMIT + 1, 413)])
def test_the_body_limit_comes_from_local_settings(host, length, status):
    answer = raw_http(host.url, post_echo(length) + b"x" * length)
    assert answer.status == status, answer.raw[:300]
    if status == 201:
        assert answer.body == b"x" * length  # the function got it all
    else:
        assert_quiet_json_rejection(answer, 413, "body_too_large")
        assert str(BODY_LIMIT) in answer.json()["error"]["message"]


def test_a_100_mb_upload_is_refused_before_a_byte_of_it_is_read(host):
    """The attack: 100 MB bodies read into memory before authentication. Now the answer comes from the headers alone."""
    answer = raw_http(host.url, post_echo(100 * 1024 * 1024))  # no body byte is ever sent
    assert_quiet_json_rejection(answer, 413, "body_too_large")
    admin = (
        b"POST /admin/functions/tick HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n"
    )
    assert_quiet_json_rejection(raw_http(host.url, admin), 413, "body_too_large")


def test_a_chunked_upload_is_cut_off_at_the_limit(host):
    chunk = b"x" * 4096
    sent: list[int] = []

    def send_chunks(sock: socket.socket) -> None:
        for _ in range(25_000):  # 100 MB if the server read it all; it answers after about 17 KB
            sock.sendall(b"1000\r\n" + chunk + b"\r\n")
            sent.append(len(chunk))

    head = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = raw_http(host.url, head, send_after=send_chunks, timeout=30)
    assert_quiet_json_rejection(answer, 413, "body_too_large")


def test_the_environment_wins_over_local_settings_for_the_body_limit(tmp_path):
    app_dir = sample_dir(tmp_path, local_settings={"Values": {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "17408"}})
    running = start_devhost(app_dir, {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "1000"})
    try:
        assert "Request body limit: 1000 bytes" in running.wait_log("Request body limit")
        assert requests.post(running.url + "/api/echo", data=b"x" * 1000, timeout=TIMEOUT).status_code == 201
        assert requests.post(running.url + "/api/echo", data=b"x" * 1001, timeout=TIMEOUT).status_code == 413
    finally:
        running.stop()


def test_a_body_limit_that_is_not_a_number_is_ignored_as_the_host_does(tmp_path):
    running = start_devhost(sample_dir(tmp_path), {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "16k"})
    try:
        log = running.wait_log("Request body limit")
        assert "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT is not a number of bytes: ignored" in log
        assert "Request body limit: 104857600 bytes" in log
    finally:
        running.stop()


def test_a_negative_body_limit_refuses_to_start(tmp_path):
    result = run_devhost_until_exit(sample_dir(tmp_path), {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "-1"})
    assert result.returncode == 2 and "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT" in result.stderr


def test_the_real_app_answers_its_own_json_413_up_to_the_samples_limit_and_the_host_beyond(tmp_path):
    """With local.settings.sample.json's limit, bodies just over 16 KiB reach the app (its JSON 413).

    Larger ones stop at the host.
    """
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    limit = int(sample["FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"])
    env = {"AUTH_MODE": "dev", "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(limit)}
    running = start_devhost(Path(ROOT), env)
    try:
        headers = {"X-Dev-User": "alice", "Content-Type": "application/json"}
        by_app = requests.post(running.url + "/api/token", data=b" " * limit, headers=headers, timeout=TIMEOUT)
        assert by_app.status_code == 413 and by_app.json()["error"]["code"] == "body_too_large"
        assert "host" not in by_app.json()["error"]["message"]  # the app's own answer
        by_host = requests.post(running.url + "/api/token", data=b" " * (limit + 1), headers=headers, timeout=TIMEOUT)
        assert by_host.status_code == 413 and by_host.json()["error"]["code"] == "body_too_large"
        assert f"host's limit of {limit} bytes" in by_host.json()["error"]["message"]
    finally:
        running.stop()
