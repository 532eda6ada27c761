"""In-process checks of the emulator's parts: no sockets, milliseconds each."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from aiohttp.test_utils import make_mocked_request

from emulator.errors import AcsError
from emulator.hmac_auth import check_hmac
from emulator.identity_ids import belongs_to_another_resource, is_guid, owning_resource
from emulator.introspection import CallLog, PeakWindows, TokenLedger
from emulator.tokens import TokenSigner, format_expires_on, new_signing_key


def test_format_expires_on_trims_trailing_zeros():
    # seven digits as in the REST spec's examples (Azure/azure-rest-api-specs specification/communication/data-plane/
    # Identity/stable/2023-10-01/examples/IssueAccessToken.json), six when the seventh is 0 (the recordings above)
    assert format_expires_on(1697000379.3244584) == "2023-10-11T04:59:39.3244584+00:00"
    assert format_expires_on(1697000379.447802) == "2023-10-11T04:59:39.447802+00:00"
    assert format_expires_on(1697000379.5) == "2023-10-11T04:59:39.5+00:00"
    assert format_expires_on(1697000379) == "2023-10-11T04:59:39+00:00"  # a whole second: no fraction at all
    assert format_expires_on(86399.99999999) == "1970-01-01T23:59:59.9999999+00:00"  # truncated, never rounded up


def test_validate_expired_in_process():
    """Expiry cannot be waited for over the wire (60 min minimum): mint one in the past in-process."""
    from emulator.app import Emulator
    from emulator.faults import Faults
    from emulator.limits import RateLimits
    from emulator.state import MemoryState

    signer = TokenSigner(new_signing_key(), "resource")
    emulator = Emulator("a2V5", signer, MemoryState(), RateLimits(), Faults(), "header")
    identity = emulator.new_identity()
    token, _ = signer.mint(identity.id, ["voip"], 60, identity.generation, now=time.time() - 3601)
    assert emulator.validate(token)["reason"] == "expired"
    fresh, _ = signer.mint(identity.id, ["voip"], 60, identity.generation)
    assert emulator.validate(fresh)["valid"] is True
    emulator.state.clear()
    assert emulator.validate(fresh)["reason"] == "unknown_identity"


def test_tokens_are_standard_base64_safe_for_many_ids():
    signer = TokenSigner(new_signing_key(), str(uuid.uuid4()))
    for i in range(300):
        user = f"8:acs:{signer.resource_id}_{uuid.uuid4()}" if i % 2 else f"8:orgid:{uuid.uuid4()}"
        token, _ = signer.mint(user, ["chat", "voip", "chat.join"][: 1 + i % 3], 60 + i, i)
        header, payload, _ = token.split(".")
        assert not set("-_") & set(header + payload)


@pytest.mark.parametrize("decode_url", [False, True])
def test_hmac_verifier_accepts_what_the_sdk_policy_signs(decode_url):
    # the SDK's own signing policy (azure-communication-identity 1.5.0, _shared/policy.py) is the reference: what it
    # signs, with either path encoding, must verify; learn.microsoft.com/azure/communication-services/tutorials/hmac-header-tutorial  # noqa: E501 - a reference URL, kept whole
    from azure.communication.identity._shared.policy import HMACCredentialsPolicy
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.rest import HttpRequest

    key = base64.b64encode(b"s" * 32).decode()
    url = "https://127.0.0.1:8443/identities/8%3Aacs%3Ar_1/:issueAccessToken?api-version=2023-10-01"
    body = json.dumps({"scopes": ["voip"]})
    http_request = HttpRequest("POST", url, content=body)
    http_request.body = body  # the SDK's serializer sets .body to the JSON text
    HMACCredentialsPolicy("https://127.0.0.1:8443", key, decode_url=decode_url).on_request(
        PipelineRequest(http_request, PipelineContext(None))
    )
    headers = dict(http_request.headers.items()) | {"Host": "127.0.0.1:8443"}
    mocked = make_mocked_request("POST", url.split("8443", 1)[1], headers=headers)
    check_hmac(mocked, body.encode(), key)  # raises on mismatch
    with pytest.raises(AcsError) as caught:
        check_hmac(mocked, body.encode() + b" ", key)
    assert caught.value.status == 401 and caught.value.code == "Denied"
    with pytest.raises(AcsError):
        check_hmac(mocked, body.encode(), base64.b64encode(b"t" * 32).decode())
    with pytest.raises(AcsError):
        check_hmac(mocked, body.encode(), key, now=time.time() + 16 * 60)


# ---------------------------------------------------------------------- identity ids and their resource


def test_owning_resource_reads_the_guid_of_an_acs_id():
    resource = "2dee53b4-368b-45b4-ab52-8493fb117652"  # the REST spec examples' resource
    assert owning_resource(f"8:acs:{resource.upper()}_00000005-14a2-493b-8a72-5a3a0d000081") == resource
    assert owning_resource("8:acs:nobody_1") is None  # not a GUID: nothing to compare, left to "not found"
    assert owning_resource("8:orgid:11111111-1111-1111-1111-111111111111") is None
    assert owning_resource(f"8:acs:{resource}") is None  # no unique part
    assert belongs_to_another_resource(f"8:acs:{uuid.uuid4()}_x", resource)
    assert not belongs_to_another_resource(f"8:acs:{resource}_x", resource.upper())
    assert is_guid(resource) and not is_guid("invalid") and not is_guid(resource.replace("-", ""))


# ---------------------------------------------------------------------- introspection


def test_peak_counts_the_busiest_sliding_window_only():
    peaks = PeakWindows(window=30.0)
    for at in (0.0, 1.0, 2.0, 29.0):  # four inside (0, 30]
        peaks.succeeded("revoke", now=at)
    assert peaks.peak("revoke") == 4
    for at in (31.0, 32.0, 33.0):  # 0, 1 and 2 have left the window: 29, 31, 32, 33 is four again, not seven
        peaks.succeeded("revoke", now=at)
    assert peaks.peak("revoke") == 4
    peaks.succeeded("revoke", now=34.0)  # 29..34: five
    assert peaks.peak("revoke") == 5 and peaks.peak("issue") == 0
    assert peaks.describe()["operations"]["revoke"]["peak"] == 5 and peaks.describe()["windowSeconds"] == 30.0
    peaks.clear()
    assert peaks.peak("revoke") == 0 and peaks.describe()["operations"] == {}


def test_peak_window_is_half_open_like_the_rate_limit():
    peaks = PeakWindows(window=30.0)
    peaks.succeeded("delete", now=0.0)
    peaks.succeeded("delete", now=30.0)  # exactly one window later: the first one has left
    assert peaks.peak("delete") == 1


def test_call_log_keeps_exact_counts_and_recent_calls():
    log = CallLog()
    for n in range(150):
        log.record("8:acs:r_1", "issue", 200 if n % 3 else 429, at=1000.0 + n)
    log.record("8:acs:r_1", "revoke", 204, at=2000.0)
    calls = log.describe("8:acs:r_1")
    assert calls["issue"]["count"] == 150 and calls["issue"]["succeeded"] == 100
    assert calls["issue"]["statuses"] == {"200": 100, "429": 50}
    assert calls["issue"]["first"] == 1000.0 and calls["issue"]["last"] == 1149.0
    assert len(calls["issue"]["recent"]) == 100 and calls["issue"]["recent"][-1] == {"at": 1149.0, "status": 200}
    assert log.describe("8:acs:r_2") == {}
    assert log.summary() == {"8:acs:r_1": {"issue": 150, "revoke": 1}}


def test_token_ledger_answers_which_tokens_still_live():
    ledger = TokenLedger()
    now = time.time()
    ledger.issued("a", now - 20, now + 3600)
    ledger.issued("a", now - 10, now + 3600)
    ledger.issued("a", now - 5, now - 1)  # already expired: dead anyway
    assert ledger.describe("a", before=now - 9) == {"validFrom": None, "liveTokens": 2, "liveTokensIssuedBefore": 2}
    assert ledger.describe("a", before=now - 15)["liveTokensIssuedBefore"] == 1
    ledger.invalidated("a", at=now)
    ledger.issued("a", now + 1, now + 3600)
    assert ledger.describe("a", before=now + 0.5) == {"validFrom": now, "liveTokens": 1, "liveTokensIssuedBefore": 0}
    assert ledger.describe("never-seen") == {"validFrom": None, "liveTokens": 0}
