"""``Set-Cookie`` as a function's answer carries it in Azure, on both of devhost's paths.

A function's ``Set-Cookie`` headers do not reach the client as written: ``azure.functions`` (1.x and 2.x,
``http.HttpResponseConverter.encode``) parses each with ``http.cookies.SimpleCookie`` and moves it from the
headers to ``RpcHttp.cookies``; the runtime keeps name, value, domain, path, expires, secure, httponly,
samesite and max-age (``bindings/datumdef.py``); the host appends each cookie to the ASP.NET Core response
with ``CookieOptions`` (path ``/`` unless given), whose ``SetCookieHeaderValue`` writes the attributes in the
order expires, max-age, domain, path, secure, samesite, httponly (dotnet/aspnetcore,
``src/Http/Headers/src/SetCookieHeaderValue.cs``), the value escaped as ``Uri.EscapeDataString`` escapes it.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from http.cookies import CookieError, SimpleCookie
from urllib.parse import quote

SAME_SITE = {"lax": "lax", "strict": "strict", "none": "none"}


def set_cookie_value(
    name: str,
    value: str,
    *,
    expires: datetime | None = None,
    max_age: float | None = None,
    domain: str | None = None,
    path: str | None = None,
    secure: bool = False,
    same_site: str | None = None,
    http_only: bool = False,
) -> str:
    parts = [f"{name}={quote(value, safe='-_.~')}"]
    if expires is not None:
        parts.append("expires=" + expires.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    if max_age is not None:
        parts.append(f"max-age={int(max_age)}")
    if domain:
        parts.append(f"domain={domain}")
    parts.append(f"path={path or '/'}")
    if secure:
        parts.append("secure")
    if same_site in SAME_SITE:
        parts.append(f"samesite={SAME_SITE[same_site]}")
    if http_only:
        parts.append("httponly")
    return "; ".join(parts)


def _expires(text: str) -> datetime | None:
    try:
        return parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError):
        return None


def as_host_writes_them(header: str) -> list[str]:
    """The ``Set-Cookie`` values the client gets for one ``Set-Cookie`` header a function set."""
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header)
    except CookieError:
        return []  # the worker's parse fails too; the function's answer fails there (devhost keeps the rest of it)
    values = []
    for name, morsel in cookie.items():
        max_age = morsel["max-age"]
        values.append(
            set_cookie_value(
                name,
                morsel.value,
                expires=_expires(morsel["expires"]),
                max_age=float(max_age) if str(max_age).strip() else None,
                domain=morsel["domain"] or None,
                path=morsel["path"] or None,
                secure=bool(morsel["secure"]),
                same_site=str(morsel["samesite"]).lower() or None,
                http_only=bool(morsel["httponly"]),
            )
        )
    return values
