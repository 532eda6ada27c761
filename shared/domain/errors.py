"""Domain errors shared by every function.

The Functions layer turns each into one status code and a JSON error body (a table
in ``shared/functions/http.py``), so the rest of the code never needs to know about
HTTP, and SDK exceptions (which can carry request details) never travel past the
adapter that caught them.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: a failure the caller can be told about in one safe sentence."""

    #: snake_case code for the JSON error body
    code: str = "service_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class SettingsError(ServiceError):
    """An app setting is missing or malformed; the message names the setting."""

    code = "misconfigured"

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"App setting {setting} {problem}")
        self.setting = setting


class MisconfiguredError(ServiceError):
    """The service cannot work as configured (e.g. ACS rejected our credential)."""

    code = "misconfigured"


class InvalidRequestError(ServiceError):
    """The request is malformed or asks for something ACS will not do."""

    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, target: str | None = None) -> None:
        super().__init__(message, code=code)
        self.target = target


class NotFoundError(ServiceError):
    """The ACS identity (or the caller's mapping to it) does not exist."""

    code = "identity_not_found"


class RetryLaterError(ServiceError):
    """Not now: the caller should retry after ``retry_after`` seconds (answered with ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


class ThrottledError(RetryLaterError):
    """Too many requests (ours or ACS's); retry after ``retry_after`` seconds."""

    code = "throttled"


class UnavailableError(RetryLaterError):
    """A dependency (ACS, storage, the token issuer) is down; retry later."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, code: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after, code=code)


class ForeignIdentityError(ServiceError):
    """The ACS identity belongs to another ACS resource (ACS's 401 ``IdentityNotOwned``).

    Not a credential problem: a mapping made with another resource (a deployment moved to a new
    resource, storage shared between environments, a restore). The domain gives the user an
    identity in the current resource instead; it never reaches a caller as an error.
    """

    code = "identity_not_owned"


class UnauthenticatedError(ServiceError):
    """No credential, or one that failed verification (401)."""

    code = "unauthenticated"

    def __init__(self, message: str, *, www_authenticate: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        #: value for the WWW-Authenticate header (bearer mode)
        self.www_authenticate = www_authenticate


class ConflictError(ServiceError):
    """The request conflicts with the current state (409), e.g. cancelling a campaign that has ended."""

    code = "conflict"


class ForbiddenError(ServiceError):
    """Authenticated, but not allowed to do this (403)."""

    code = "forbidden"

    def __init__(self, message: str, *, code: str | None = None, www_authenticate: str | None = None) -> None:
        super().__init__(message, code=code)
        #: value for the WWW-Authenticate header (RFC 6750 insufficient_scope)
        self.www_authenticate = www_authenticate
