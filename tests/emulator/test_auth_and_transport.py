"""HMAC and bearer authentication, HTTPS/HTTP transport, SQLite persistence, managed identity."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlparse

import pytest
import requests
from azure.communication.identity import CommunicationIdentityClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError

from localdev.emulator_process import start_emulator
from tests.support import run_for_json

pytestmark = pytest.mark.integration

API = "api-version=2023-10-01"


def signed_request(
    emulator,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    key: str | None = None,
    date: datetime | None = None,
    tamper: bytes | None = None,
    sign_path: str | None = None,
) -> requests.Response:
    """A request signed exactly as the SDK signs, with optional deliberate faults."""
    url = f"{emulator.endpoint}{path}"
    host = urlparse(url).netloc
    stamp = format_datetime(date or datetime.now(UTC), usegmt=True)
    content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    string_to_sign = f"{method}\n{sign_path or path}\n{stamp};{host};{content_hash}"
    secret = base64.b64decode(key or emulator.access_key)
    signature = base64.b64encode(hmac.new(secret, string_to_sign.encode(), hashlib.sha256).digest()).decode()
    headers = {
        "x-ms-date": stamp,
        "x-ms-content-sha256": content_hash,
        "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}",
        "Content-Type": "application/json",
    }
    return requests.request(
        method, url, data=tamper if tamper is not None else body, headers=headers, verify=str(emulator.cert_path), timeout=10
    )


def assert_denied(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "Denied"


def test_a_correctly_signed_raw_request_works(emulator):
    # the scheme of learn.microsoft.com/azure/communication-services/tutorials/hmac-header-tutorial: HMAC-SHA256 over
    # VERB, path and query, x-ms-date;host;x-ms-content-sha256, with the base64-decoded key
    response = signed_request(emulator, "POST", f"/identities?{API}", b"{}")
    assert response.status_code == 201 and response.json()["identity"]["id"].startswith("8:acs:")


def test_wrong_key_is_401(emulator):
    wrong = base64.b64encode(b"not the emulator's key at all!!!").decode()
    assert_denied(signed_request(emulator, "POST", f"/identities?{API}", b"{}", key=wrong))
    client = CommunicationIdentityClient(emulator.endpoint, AzureKeyCredential(wrong), connection_verify=str(emulator.cert_path))
    with pytest.raises(ClientAuthenticationError) as caught:
        client.create_user()
    assert caught.value.status_code == 401


def test_tampered_body_is_401(emulator):
    body = json.dumps({"createTokenWithScopes": ["chat"]}).encode()
    assert_denied(
        signed_request(
            emulator, "POST", f"/identities?{API}", body, tamper=json.dumps({"createTokenWithScopes": ["voip"]}).encode()
        )
    )


def test_stale_or_future_date_is_401(emulator):
    assert_denied(signed_request(emulator, "POST", f"/identities?{API}", b"{}", date=datetime.now(UTC) - timedelta(minutes=20)))
    assert_denied(signed_request(emulator, "POST", f"/identities?{API}", b"{}", date=datetime.now(UTC) + timedelta(minutes=20)))


def test_signature_over_another_path_is_401(emulator):
    assert_denied(signed_request(emulator, "POST", f"/identities?{API}", b"{}", sign_path="/identities?api-version=2022-06-01"))


def test_no_credentials_is_401(emulator):
    response = requests.post(f"{emulator.endpoint}/identities?{API}", json={}, verify=str(emulator.cert_path), timeout=10)
    assert_denied(response)


def test_encoded_and_decoded_paths_both_verify(emulator):
    identity = signed_request(emulator, "POST", f"/identities?{API}", b"{}").json()["identity"]["id"]
    encoded = identity.replace(":", "%3A")
    path = f"/identities/{encoded}/:issueAccessToken?{API}"
    body = json.dumps({"scopes": ["voip"]}).encode()
    assert signed_request(emulator, "POST", path, body).status_code == 200  # signed as sent (sync SDK)
    decoded = f"/identities/{identity}/:issueAccessToken?{API}"
    assert signed_request(emulator, "POST", path, body, sign_path=decoded).status_code == 200  # signed decoded (aio SDK)


def test_unsupported_api_version_is_400(emulator):
    response = signed_request(emulator, "POST", "/identities?api-version=1999-01-01", b"{}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "UnsupportedApiVersion"


def test_plain_http_mode(tmp_path):
    with start_emulator(cert_dir=tmp_path, http=True) as emulator:
        assert emulator.endpoint.startswith("http://")
        client = CommunicationIdentityClient(emulator.endpoint, AzureKeyCredential(emulator.access_key))
        _user, token = client.create_user_and_token(["voip"])
        assert emulator.validate(token.token)["valid"] is True


def test_sqlite_state_survives_a_restart(tmp_path):
    state = tmp_path / "acs.sqlite3"
    with start_emulator("--state-file", str(state), cert_dir=tmp_path) as first:
        client = CommunicationIdentityClient.from_connection_string(
            first.connection_string, connection_verify=str(first.cert_path)
        )
        kept, kept_token = client.create_user_and_token(["voip"])
        gone, gone_token = client.create_user_and_token(["voip"])
        client.delete_user(gone)
    with start_emulator("--state-file", str(state), cert_dir=tmp_path) as second:
        assert second.access_key == first.access_key  # same key, from the state file (port 0 differs)
        client = CommunicationIdentityClient.from_connection_string(
            second.connection_string, connection_verify=str(second.cert_path)
        )
        assert second.validate(kept_token.token)["valid"] is True  # the signing key persisted too
        assert second.validate(gone_token.token)["reason"] == "identity_deleted"
        client.get_token(kept, ["chat"])


MANAGED_IDENTITY_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from azure.identity.aio import ManagedIdentityCredential
    from azure.communication.identity.aio import CommunicationIdentityClient

    async def main(endpoint, cert):
        credential = ManagedIdentityCredential()
        async with CommunicationIdentityClient(endpoint, credential, connection_verify=cert) as client:
            user, token = await client.create_user_and_token(["voip"])
            again = await client.get_token(user, ["chat"])
        await credential.close()
        print(json.dumps({"user": user.properties["id"], "token": again.token}))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_managed_identity_path_end_to_end(emulator):
    """ManagedIdentityCredential (App Service protocol) gets a bearer token from the emulator's local issuer.

    The credential's own pipeline does not take connection_verify, so the child process trusts the
    emulator's certificate through SSL_CERT_FILE, set before aiohttp is imported.
    """
    env = {
        **os.environ,
        "IDENTITY_ENDPOINT": emulator.control_url("msi/token"),
        "IDENTITY_HEADER": emulator.identity_header,
        "SSL_CERT_FILE": str(emulator.cert_path),
    }
    answer = run_for_json([sys.executable, "-c", MANAGED_IDENTITY_SCRIPT, emulator.endpoint, str(emulator.cert_path)], env)
    assert answer["user"].startswith("8:acs:")
    assert emulator.validate(answer["token"])["valid"] is True


def test_managed_identity_endpoint_requires_the_identity_header(emulator):
    url = emulator.control_url("msi/token") + "?api-version=2019-08-01&resource=https://communication.azure.com"
    assert (
        requests.get(url, headers={"X-IDENTITY-HEADER": "wrong"}, verify=str(emulator.cert_path), timeout=10).status_code == 401
    )


def test_forged_bearer_token_is_401(emulator):
    import jwt

    forged = jwt.encode({"aud": "https://communication.azure.com", "exp": 4102444800}, "guess-" * 8, algorithm="HS256")
    response = requests.post(
        f"{emulator.endpoint}/identities?{API}",
        json={},
        headers={"Authorization": f"Bearer {forged}"},
        verify=str(emulator.cert_path),
        timeout=10,
    )
    assert response.status_code == 401
