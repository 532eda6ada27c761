"""Token request validation against the policy, and the per-user budget."""

import pytest

from shared.domain.errors import ForbiddenError, InvalidRequestError, ThrottledError
from shared.domain.policy import parse_token_request
from shared.domain.ratelimit import PerUserRateLimiter
from shared.settings import load_token_policy

POLICY = load_token_policy({"TOKEN_MAX_EXPIRY_MINUTES": "720", "TOKEN_DEFAULT_SCOPES": "voip"})


def test_defaults_apply_to_an_empty_body():
    request = parse_token_request({}, POLICY)
    assert request.scopes == ("voip",) and request.expires_in_minutes == 720


def test_explicit_values_and_duplicate_scopes():
    request = parse_token_request({"scopes": ["chat", "voip", "chat"], "expiresInMinutes": 60}, POLICY)
    assert request.scopes == ("chat", "voip") and request.expires_in_minutes == 60


@pytest.mark.parametrize(
    "body, code",
    [
        ({"scopes": []}, "invalid_scopes"),
        ({"scopes": "voip"}, "invalid_scopes"),
        ({"scopes": [1]}, "invalid_scopes"),
        ({"scopes": ["video"]}, "invalid_scopes"),
        ({"expiresInMinutes": 59}, "invalid_expiry"),
        ({"expiresInMinutes": 721}, "invalid_expiry"),
        ({"expiresInMinutes": "60"}, "invalid_expiry"),
        ({"expiresInMinutes": 60.5}, "invalid_expiry"),
        ({"expiresInMinutes": True}, "invalid_expiry"),
        ({"userId": "8:acs:someone-else"}, "unknown_field"),
    ],
)
def test_bad_requests_are_400_with_a_precise_code(body, code):
    with pytest.raises(InvalidRequestError) as caught:
        parse_token_request(body, POLICY)
    assert caught.value.code == code


def test_real_scope_outside_the_allow_list_is_403():
    with pytest.raises(ForbiddenError) as caught:
        parse_token_request({"scopes": ["chat.join"]}, POLICY)
    assert caught.value.code == "scope_not_allowed"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_bucket_allows_burst_then_throttles_with_retry_after():
    clock = FakeClock()
    limiter = PerUserRateLimiter(3, clock=clock)
    for _ in range(3):
        limiter.acquire("alice")
    with pytest.raises(ThrottledError) as caught:
        limiter.acquire("alice")
    assert caught.value.code == "rate_limited" and caught.value.retry_after == 20  # one token per 20 s
    limiter.acquire("bob")  # other users keep their own budget
    clock.now += 20
    limiter.acquire("alice")


def test_zero_disables_the_limit():
    limiter = PerUserRateLimiter(0)
    for _ in range(1000):
        limiter.acquire("alice")


def test_times_are_rfc_3339_for_every_year():
    from datetime import UTC, datetime

    from shared.domain.clock import format_utc, parse_utc

    for moment in (datetime(246, 11, 3, 14, 47, 5, 999, tzinfo=UTC), datetime(2026, 11, 27, 9, 30, tzinfo=UTC)):
        text = format_utc(moment)
        assert len(text) == 20 and text.endswith("Z") and parse_utc(text) == moment.replace(microsecond=0)
    assert format_utc(datetime(246, 11, 3, tzinfo=UTC)) == "0246-11-03T00:00:00Z"
