"""Edges of the emulator: expiry values, request validation, introspection verdicts, the CLI contract,
in-process managed identity, and the HMAC verifier against the SDK's own signing policy."""

from __future__ import annotations

import base64
import json
import re
import signal
import ssl
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from aiohttp.test_utils import make_mocked_request
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncClient
from azure.core.exceptions import HttpResponseError
from cryptography import x509

from emulator.errors import AcsError
from emulator.hmac_auth import check_hmac, content_hash, signature
from emulator.tokens import TokenSigner, format_expires_on, new_signing_key
from localdev.emulator_process import start_emulator

pytestmark = pytest.mark.integration

API = "api-version=2023-10-01"
EXPIRES_ON = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$")


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True))


def raw(emulator, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, dict]:
    """An unsigned/hand-signed request over urllib: (status, json body or {}, headers)."""
    request = urllib.request.Request(f"{emulator.endpoint}{path}", data=body or None, method=method, headers=headers or {})
    context = ssl.create_default_context(cafile=str(emulator.cert_path))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            data = response.read()
            return response.status, json.loads(data) if data else {}, dict(response.headers)
    except urllib.error.HTTPError as error:
        data = error.read()
        return error.code, json.loads(data) if data else {}, dict(error.headers)


def signed_headers(emulator, method: str, path: str, body: bytes, date: str | None = None) -> dict:
    from email.utils import formatdate

    date = date or formatdate(usegmt=True)
    host = emulator.endpoint.split("://", 1)[1]
    digest = content_hash(body)
    sig = signature(emulator.access_key, f"{method}\n{path}\n{date};{host};{digest}")
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": digest,
        "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}",
        "Content-Type": "application/json",
    }


# ---------------------------------------------------------------------- expiry as the SDK returns it


@pytest.mark.parametrize("minutes", [None, 60, 1440])
def test_expires_on_format_matches_the_jwt_expiry(client, minutes):
    user = client.create_user()
    kwargs = {} if minutes is None else {"token_expires_in": timedelta(minutes=minutes)}
    token = client.get_token(user, ["voip"], **kwargs)
    assert EXPIRES_ON.match(token.expires_on), token.expires_on  # the SDK hands back the service's string
    expires = datetime.fromisoformat(token.expires_on)
    claims = claims_of(token.token)
    assert int(expires.timestamp()) == claims["exp"]
    expected = (minutes or 1440) * 60
    assert claims["exp"] - claims["iat"] == expected
    assert abs(expires - datetime.now(timezone.utc) - timedelta(seconds=expected)) < timedelta(seconds=30)
    assert claims["csi"] == str(claims["iat"]) and claims["skypeid"] == user.properties["id"][2:]


def test_format_expires_on_has_seven_fractional_digits():
    assert format_expires_on(1697000379.3244584) == "2023-10-11T04:59:39.3244584+00:00"
    assert format_expires_on(1697000379) == "2023-10-11T04:59:39.0000000+00:00"


def test_teams_token_lives_as_long_as_the_entra_token(client):
    oid, app_id = "33333333-3333-3333-3333-333333333333", "44444444-4444-4444-4444-444444444444"
    entra_exp = int(time.time()) + 2 * 3600
    aad = jwt.encode({"aud": "https://auth.msft.communication.azure.com", "oid": oid, "azp": app_id, "exp": entra_exp},
                     "x" * 32, algorithm="HS256")
    token = client.get_token_for_teams_user(aad, app_id, oid)
    assert abs(claims_of(token.token)["exp"] - entra_exp) <= 1
    assert claims_of(token.token)["skypeid"] == f"orgid:{oid}"


# ---------------------------------------------------------------------- request validation over the wire


def test_create_user_and_token_validation(client):
    with pytest.raises(HttpResponseError) as caught:
        client.create_user_and_token(["voip"], token_expires_in=timedelta(minutes=1441))
    assert caught.value.status_code == 400 and caught.value.error.code == "ValidationError"
    assert caught.value.error.message == "ExpiresInMinutes value 1441 is invalid. Value must be within the [60, 1440] interval."
    with pytest.raises(HttpResponseError) as caught:
        client.create_user_and_token(["voip", "video"])
    assert caught.value.status_code == 400 and caught.value.error.target == "Scopes"


def test_malformed_json_is_400(emulator):
    path = f"/identities?{API}"
    body = b'{"createTokenWithScopes": ['
    status, answer, headers = raw(emulator, "POST", path, body, signed_headers(emulator, "POST", path, body))
    assert status == 400 and answer["error"]["code"] == "InvalidRequestBody"
    assert headers["Content-Type"].startswith("application/json")


def test_missing_api_version_is_400(emulator):
    status, answer, _ = raw(emulator, "POST", "/identities", b"", signed_headers(emulator, "POST", "/identities", b""))
    assert status == 400 and answer["error"]["code"] == "MissingApiVersionParameter"


@pytest.mark.parametrize("drop", ["x-ms-date", "x-ms-content-sha256", "Authorization"])
def test_missing_auth_headers_are_401(emulator, drop):
    path = f"/identities?{API}"
    headers = signed_headers(emulator, "POST", path, b"")
    del headers[drop]
    status, answer, _ = raw(emulator, "POST", path, b"", headers)
    assert status == 401 and answer["error"]["code"] == "Denied"


def test_unknown_route_is_404(emulator):
    path = f"/identities/x/:explode?{API}"
    status, answer, _ = raw(emulator, "POST", path, b"", signed_headers(emulator, "POST", path, b""))
    assert status == 404 and answer["error"]["code"] == "NotFound"


def test_unknown_identity_is_404_identity_not_found(client):
    from azure.communication.identity import CommunicationUserIdentifier
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError) as caught:
        client.get_token(CommunicationUserIdentifier("8:acs:nobody_1"), ["chat"])
    assert caught.value.status_code == 404 and caught.value.error.code == "IdentityNotFound"


# ---------------------------------------------------------------------- introspection


def test_validate_verdicts(client, emulator):
    user, token = client.create_user_and_token(["chat", "voip"])
    verdict = emulator.validate(token.token)
    assert verdict == {"valid": True, "reason": None, "communicationUserId": user.properties["id"],
                       "scopes": ["chat", "voip"], "expiresOn": format_expires_on(claims_of(token.token)["exp"])}
    forged = jwt.encode(claims_of(token.token), new_signing_key(), algorithm="RS256")
    assert emulator.validate(forged)["reason"] == "bad_signature"
    assert emulator.validate("not-a-jwt")["reason"] == "malformed"
    assert emulator.validate("")["valid"] is False


def test_validate_expired_in_process():
    """Expiry cannot be waited for over the wire (60 min minimum): mint one in the past in-process."""
    from emulator.app import Emulator
    from emulator.faults import Faults
    from emulator.limits import RateLimits
    from emulator.state import MemoryState

    signer = TokenSigner(new_signing_key(), "resource")
    emulator = Emulator("a2V5", signer, MemoryState(), RateLimits(), Faults(), "header")
    identity = emulator.state.add(emulator.new_identity_id())
    token, _ = signer.mint(identity.id, ["voip"], 60, identity.generation, now=time.time() - 3601)
    assert emulator.validate(token)["reason"] == "expired"
    fresh, _ = signer.mint(identity.id, ["voip"], 60, identity.generation)
    assert emulator.validate(fresh)["valid"] is True
    emulator.state.clear()
    assert emulator.validate(fresh)["reason"] == "unknown_identity"


def test_tokens_are_standard_base64_safe_for_many_ids():
    import uuid

    signer = TokenSigner(new_signing_key(), str(uuid.uuid4()))
    for i in range(300):
        user = f"8:acs:{signer.resource_id}_{uuid.uuid4()}" if i % 2 else f"8:orgid:{uuid.uuid4()}"
        token, _ = signer.mint(user, ["chat", "voip", "chat.join"][: 1 + i % 3], 60 + i, i)
        header, payload, _ = token.split(".")
        assert not set("-_") & set(header + payload)


# ---------------------------------------------------------------------- control endpoints


def test_faults_get_put_and_reset(emulator):
    assert emulator.faults()["throttleRate"] == 0.0
    current = emulator.set_faults(throttleNext=2, latencyMs=5, retryAfterSeconds=3)
    assert current["throttleNext"] == 2 and current["latencyMs"] == 5 and current["retryAfterSeconds"] == 3
    emulator.reset()
    assert emulator.faults()["throttleNext"] == 0 and emulator.stats()["operations"] == {}


def test_bad_limits_are_400_and_change_nothing(emulator):
    before = emulator.call("GET", "limits")
    with pytest.raises(urllib.error.HTTPError) as caught:
        emulator.set_limits(issue={"count": 3}, bogus={"count": 1})
    assert caught.value.code == 400
    assert emulator.call("GET", "limits") == before


def test_unavailable_carries_retry_after(emulator):
    client = CommunicationIdentityClient.from_connection_string(emulator.connection_string, connection_verify=str(emulator.cert_path),
                                                                retry_total=0)
    emulator.set_faults(unavailableNext=1, retryAfterSeconds=4)
    with pytest.raises(HttpResponseError) as caught:
        client.create_user()
    assert caught.value.status_code == 503 and caught.value.response.headers["Retry-After"] == "4"
    assert caught.value.error.code == "ServiceUnavailable"


async def test_async_client_retries_a_throttle(emulator):
    emulator.set_faults(throttleNext=1, retryAfterSeconds=1)
    async with AsyncClient.from_connection_string(emulator.connection_string, connection_verify=str(emulator.cert_path)) as client:
        user, token = await client.create_user_and_token(["chat"])
    assert emulator.validate(token.token)["valid"] is True
    assert emulator.stats()["statuses"] == {"create:429": 1, "create:201": 1}


def test_reset_with_state_forgets_identities(tmp_path):
    with start_emulator(cert_dir=tmp_path) as emulator:
        client = CommunicationIdentityClient.from_connection_string(emulator.connection_string, connection_verify=str(emulator.cert_path))
        user, token = client.create_user_and_token(["voip"])
        assert emulator.stats()["identities"] == {"live": 1, "deleted": 0}
        emulator.reset(state=True)
        assert emulator.stats()["identities"] == {"live": 0, "deleted": 0}
        assert emulator.validate(token.token)["reason"] == "unknown_identity"


# ---------------------------------------------------------------------- CLI contract and TLS


def test_cli_prints_one_line_reuses_the_cert_and_exits_cleanly(tmp_path):
    key = base64.b64encode(b"k" * 32).decode()
    with start_emulator("--access-key", key, "--resource-name", "my-acs", cert_dir=tmp_path) as first:
        assert first.connection_string == f"endpoint={first.endpoint}/;accesskey={key}"
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", first.endpoint)
        assert first.stats()["resource"] == "my-acs"
        cert_bytes = first.cert_path.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_bytes)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in san.get_values_for_type(x509.DNSName)
        assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        first.process.send_signal(signal.SIGINT)
        assert first.process.wait(timeout=10) == 0
        time.sleep(0.1)
        assert first.extra_stdout == []  # nothing but the connection string on stdout
        assert key not in "".join(first.stderr_lines)  # the key is never logged
    with start_emulator(cert_dir=tmp_path, env={"PATH": "/usr/bin:/bin", "EMULATOR_ACCESS_KEY": key}) as second:
        assert second.cert_path.read_bytes() == cert_bytes  # still valid: reused
        assert second.access_key == key  # from EMULATOR_ACCESS_KEY
        assert second.stop() == 0  # SIGTERM: clean exit


def test_start_failure_reports_stderr(tmp_path):
    with pytest.raises(RuntimeError) as caught:
        start_emulator("--access-key", "not base64!!", cert_dir=tmp_path)
    assert "did not start" in str(caught.value) and "Error" in str(caught.value)


# ---------------------------------------------------------------------- managed identity, in process


async def test_managed_identity_in_process_with_connection_verify(emulator, monkeypatch):
    """ManagedIdentityCredential passes its keyword arguments to its own transport, so connection_verify works there too."""
    from azure.identity.aio import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emulator.identity_header)
    credential = ManagedIdentityCredential(connection_verify=str(emulator.cert_path))
    async with credential, AsyncClient(emulator.endpoint, credential, connection_verify=str(emulator.cert_path)) as client:
        user = await client.create_user()
        token = await client.get_token(user, ["voip"], token_expires_in=timedelta(minutes=60))
        await client.revoke_tokens(user)
        assert emulator.validate(token.token)["reason"] == "revoked"
        await client.delete_user(user)
        access = await credential.get_token("https://communication.azure.com//.default")
    assert jwt.decode(access.token, options={"verify_signature": False})["aud"] == "https://communication.azure.com"
    assert access.expires_on > time.time() + 3000


def test_managed_identity_sync_credential(emulator, monkeypatch):
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emulator.identity_header)
    credential = ManagedIdentityCredential(client_id="user-assigned-client-id", connection_verify=str(emulator.cert_path))
    client = CommunicationIdentityClient(emulator.endpoint, credential, connection_verify=str(emulator.cert_path))
    user, token = client.create_user_and_token(["chat"])
    assert emulator.validate(token.token)["valid"] is True


def test_msi_endpoint_rejects_other_resources_and_versions(emulator):
    headers = {"X-IDENTITY-HEADER": emulator.identity_header}
    base = "/_emulator/msi/token?api-version=2019-08-01&resource="
    assert raw(emulator, "GET", base + "https://vault.azure.net", headers=headers)[0] == 400
    assert raw(emulator, "GET", "/_emulator/msi/token?api-version=2017-09-01&resource=https://communication.azure.com", headers=headers)[0] == 400
    status, answer, _ = raw(emulator, "GET", base + "https://communication.azure.com", headers=headers)
    assert status == 200 and answer["token_type"] == "Bearer" and int(answer["expires_on"]) > time.time()


def test_bearer_with_wrong_audience_is_401(emulator):
    # a token the emulator signed itself, but for another audience, must not open the API
    status, answer, _ = raw(emulator, "GET", "/_emulator/msi/token?api-version=2019-08-01&resource=https://communication.azure.com",
                            headers={"X-IDENTITY-HEADER": emulator.identity_header})
    good = answer["access_token"]
    status, _, _ = raw(emulator, "POST", f"/identities?{API}", b"", {"Authorization": f"Bearer {good}"})
    assert status == 201
    tampered_claims = jwt.decode(good, options={"verify_signature": False}) | {"aud": "https://graph.microsoft.com"}
    header, _, sig = good.split(".")
    payload = base64.urlsafe_b64encode(json.dumps(tampered_claims).encode()).rstrip(b"=").decode()
    status, answer, _ = raw(emulator, "POST", f"/identities?{API}", b"", {"Authorization": f"Bearer {header}.{payload}.{sig}"})
    assert status == 401 and answer["error"]["code"] == "InvalidAuthenticationToken"


# ---------------------------------------------------------------------- the verifier against the SDK's own signer


@pytest.mark.parametrize("decode_url", [False, True])
def test_hmac_verifier_accepts_what_the_sdk_policy_signs(decode_url):
    from azure.communication.identity._shared.policy import HMACCredentialsPolicy
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.rest import HttpRequest

    key = base64.b64encode(b"s" * 32).decode()
    url = "https://127.0.0.1:8443/identities/8%3Aacs%3Ar_1/:issueAccessToken?api-version=2023-10-01"
    body = json.dumps({"scopes": ["voip"]})
    http_request = HttpRequest("POST", url, content=body)
    http_request.body = body  # the SDK's serializer sets .body to the JSON text
    HMACCredentialsPolicy("https://127.0.0.1:8443", key, decode_url=decode_url).on_request(
        PipelineRequest(http_request, PipelineContext(None)))
    headers = {k: v for k, v in http_request.headers.items()} | {"Host": "127.0.0.1:8443"}
    mocked = make_mocked_request("POST", url.split("8443", 1)[1], headers=headers)
    check_hmac(mocked, body.encode(), key)  # raises on mismatch
    with pytest.raises(AcsError) as caught:
        check_hmac(mocked, body.encode() + b" ", key)
    assert caught.value.status == 401 and caught.value.code == "Denied"
    with pytest.raises(AcsError):
        check_hmac(mocked, body.encode(), base64.b64encode(b"t" * 32).decode())
    with pytest.raises(AcsError):
        check_hmac(mocked, body.encode(), key, now=time.time() + 16 * 60)
