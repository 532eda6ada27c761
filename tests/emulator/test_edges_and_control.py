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
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncClient
from azure.core.exceptions import HttpResponseError
from cryptography import x509

from emulator.hmac_auth import content_hash, signature
from emulator.tokens import format_expires_on, new_signing_key
from localdev.emulator_process import start_emulator

pytestmark = pytest.mark.integration

API = "api-version=2023-10-01"
# ACS's expiresOn: 0 to 7 fractional digits, trailing zeros trimmed (Azure/azure-sdk-assets tag
# python/communication/azure-communication-identity_76a3062f95: ...test_revoke_tokens.json "…08.0455796+00:00",
# ...test_get_token_for_teams_user_with_valid_params.json "…54.447802+00:00")
EXPIRES_ON = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,6}[1-9])?\+00:00$")


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
    assert abs(expires - datetime.now(UTC) - timedelta(seconds=expected)) < timedelta(seconds=30)
    assert claims["csi"] == str(claims["iat"]) and claims["skypeid"] == user.properties["id"][2:]


def test_teams_token_lives_as_long_as_the_entra_token(client):
    oid, app_id = "33333333-3333-3333-3333-333333333333", "44444444-4444-4444-4444-444444444444"
    entra_exp = int(time.time()) + 2 * 3600
    aad = jwt.encode(
        {"aud": "https://auth.msft.communication.azure.com", "oid": oid, "azp": app_id, "exp": entra_exp},
        "x" * 32,
        algorithm="HS256",
    )
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
    assert verdict == {
        "valid": True,
        "reason": None,
        "communicationUserId": user.properties["id"],
        "scopes": ["chat", "voip"],
        "expiresOn": format_expires_on(claims_of(token.token)["exp"]),
    }
    forged = jwt.encode(claims_of(token.token), new_signing_key(), algorithm="RS256")
    assert emulator.validate(forged)["reason"] == "bad_signature"
    assert emulator.validate("not-a-jwt")["reason"] == "malformed"
    assert emulator.validate("")["valid"] is False


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
    client = CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path), retry_total=0
    )
    emulator.set_faults(unavailableNext=1, retryAfterSeconds=4)
    with pytest.raises(HttpResponseError) as caught:
        client.create_user()
    assert caught.value.status_code == 503 and caught.value.response.headers["Retry-After"] == "4"
    assert caught.value.error.code == "ServiceUnavailable"


async def test_async_client_retries_a_throttle(emulator):
    emulator.set_faults(throttleNext=1, retryAfterSeconds=1)
    async with AsyncClient.from_connection_string(
        emulator.connection_string, connection_verify=str(emulator.cert_path)
    ) as client:
        _user, token = await client.create_user_and_token(["chat"])
    assert emulator.validate(token.token)["valid"] is True
    assert emulator.stats()["statuses"] == {"create:429": 1, "create:201": 1}


def test_reset_with_state_forgets_identities(tmp_path):
    with start_emulator(cert_dir=tmp_path) as emulator:
        client = CommunicationIdentityClient.from_connection_string(
            emulator.connection_string, connection_verify=str(emulator.cert_path)
        )
        _user, token = client.create_user_and_token(["voip"])
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
    # Entra ID bearer tokens for https://communication.azure.com, as azure-communication-identity 1.5.0 requests them
    # (its credential policy asks for https://communication.azure.com//.default)
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emulator.identity_header)
    credential = ManagedIdentityCredential(client_id="user-assigned-client-id", connection_verify=str(emulator.cert_path))
    client = CommunicationIdentityClient(emulator.endpoint, credential, connection_verify=str(emulator.cert_path))
    _user, token = client.create_user_and_token(["chat"])
    assert emulator.validate(token.token)["valid"] is True


def test_msi_endpoint_rejects_other_resources_and_versions(emulator):
    headers = {"X-IDENTITY-HEADER": emulator.identity_header}
    base = "/_emulator/msi/token?api-version=2019-08-01&resource="
    assert raw(emulator, "GET", base + "https://vault.azure.net", headers=headers)[0] == 400
    assert (
        raw(
            emulator,
            "GET",
            "/_emulator/msi/token?api-version=2017-09-01&resource=https://communication.azure.com",
            headers=headers,
        )[0]
        == 400
    )
    status, answer, _ = raw(emulator, "GET", base + "https://communication.azure.com", headers=headers)
    assert status == 200 and answer["token_type"] == "Bearer" and int(answer["expires_on"]) > time.time()


def test_bearer_with_wrong_audience_is_401(emulator):
    # a token the emulator signed itself, but for another audience, must not open the API
    status, answer, _ = raw(
        emulator,
        "GET",
        "/_emulator/msi/token?api-version=2019-08-01&resource=https://communication.azure.com",
        headers={"X-IDENTITY-HEADER": emulator.identity_header},
    )
    good = answer["access_token"]
    status, _, _ = raw(emulator, "POST", f"/identities?{API}", b"", {"Authorization": f"Bearer {good}"})
    assert status == 201
    tampered_claims = jwt.decode(good, options={"verify_signature": False}) | {"aud": "https://graph.microsoft.com"}
    header, _, sig = good.split(".")
    payload = base64.urlsafe_b64encode(json.dumps(tampered_claims).encode()).rstrip(b"=").decode()
    status, answer, _ = raw(emulator, "POST", f"/identities?{API}", b"", {"Authorization": f"Bearer {header}.{payload}.{sig}"})
    assert status == 401 and answer["error"]["code"] == "InvalidAuthenticationToken"


# ---------------------------------------------------------------------- the verifier against the SDK's own signer
