"""Secrets in URLs (a shared Optuna storage's database URL): found as the database driver will
read them, hidden, and redacted from messages, since study files and logs get shared.

The driver's reading is SQLAlchemy's (`sqlalchemy.engine.make_url`, what Optuna's `RDBStorage`
hands the URL to): the password is everything between the user's ``:`` and the *first* ``@``,
whatever it holds (``/``, ``?``, ``#``, ``:``). A password holding an unencoded ``@`` is read
as a shorter password and a host that holds the rest of it, which the driver would then print in
its own errors; a URL the driver cannot read at all (a port that is not a number) would be
quoted in its error: such URLs are refused (`check_url`) before anything connects or is written.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

# Query parameters of a database URL that hold a credential (libpq's and the drivers' names).
SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|credential|auth", re.IGNORECASE)


class SecretURLError(ValueError):
    """A URL whose secret the driver would read other than it is written."""


def _driver_url(url: str) -> Any:
    """SQLAlchemy's reading of ``url``, or None where it reads none (not a database URL, or a
    port that is not a number), and its port checked as the driver will."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        _ = parsed.port  # (read lazily by some versions)
        return parsed
    except Exception:  # not SQLAlchemy's format: the textual reading alone
        return None


def _split(url: str) -> tuple[str, str, str, str, str]:
    """``url`` as the driver splits it: the scheme with ``://``, the user-info up to its first
    ``:`` (empty when none), the password as written (empty when none), the location and path
    from the first ``@`` (included) up to the query, and the query."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, tail = rest.partition("@")
    if not at:
        userinfo, tail = "", rest
    user, _, password = userinfo.partition(":")
    location, _, query = tail.partition("?")
    return scheme + sep, user, password, at + location, query


def _written_password(url: str) -> str | None:
    """The password as a person may read the URL: from the user's ``:`` to the URL's *last*
    ``@``; None when there is none. Where it is not the driver's (to the first ``@``), the URL is
    ambiguous, and refused."""
    userinfo, at, _ = url.partition("://")[2].rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.partition(":")[2]


UNREADABLE = (
    "the database driver cannot read the URL (its own error would quote part of it): "
    "percent-encode the password's reserved characters ('@' as %40, '/' as %2F, ':' as %3A, "
    "'?' as %3F, '#' as %23)"
)


def check_url(url: str) -> None:
    """Refuse, in one line that quotes no secret, a database URL the driver cannot read, or
    whose password it would read short: one holding an unencoded ``@`` (the rest would become
    the host)."""
    parsed = _driver_url(url)
    if parsed is None:
        raise SecretURLError(UNREADABLE)
    if "@" in url.partition("?")[2]:
        raise SecretURLError(
            "the URL holds an unencoded '@' after its '?', which the database driver reads as "
            "the end of a password, and the rest as the host (which it would print); "
            "percent-encode '@' in a password or query value as %40"
        )
    written = _written_password(url)
    if (parsed.password or None) != (unquote(written) if written else None):
        raise SecretURLError(
            "the URL's password holds a character that ends it early for the database driver "
            "('@', '?'), which would then read, and print, the rest as the host or database; "
            "percent-encode the password's reserved characters ('@' as %40, '/' as %2F, ':' as "
            "%3A, '?' as %3F, '#' as %23)"
        )


def in_memory(url: str) -> bool:
    """Whether ``url`` is an SQLite database in memory (``sqlite://``, ``:memory:``,
    ``mode=memory``): one connection's own, which no other process or thread can reach."""
    parsed = _driver_url(url)
    if parsed is None or not parsed.drivername.startswith("sqlite"):
        return False
    database = parsed.database or ""
    return database in ("", ":memory:") or parsed.query.get("mode") == "memory"


def url_secrets(url: str) -> list[str]:
    """The secrets a URL holds, decoded and as written: the password of its user-info and the
    value of each query parameter that names a credential (``password=``, ``sslpassword=``,
    ``token=``...)."""
    _, _, password, _, query = _split(url)
    secrets = {password, unquote(password)} if password else set()
    parsed = _driver_url(url)
    if parsed is not None and parsed.password:
        secrets.add(str(parsed.password))
    for pair in query.split("&"):  # each value as written and decoded (as parse_qsl would)
        name, _, value = pair.partition("=")
        if value and SECRET_PARAMETER.search(unquote_plus(name)):
            secrets |= {value, unquote(value), unquote_plus(value)}
    return sorted(s for s in secrets if s)


def without_password(url: str) -> str:
    """``url`` with every secret it holds (`url_secrets`) shown as ``***``, rebuilt part by
    part as the driver splits it: the user-info's password, then each credential parameter's
    value."""
    if "://" not in url:
        return url
    scheme, user, password, location, query = _split(url)
    if password:
        user += ":***"
    if query:
        query = "?" + "&".join(
            f"{name}=***" if value and SECRET_PARAMETER.search(unquote_plus(name)) else pair
            for pair in query.split("&")
            for name, _, value in [pair.partition("=")]
        )
    return f"{scheme}{user}{location}{query}"


def redact(text: str, url: str) -> str:
    """``text``, a message that may quote the URL, with the URL shown by `without_password` and
    any other appearance of one of its secrets (raw or percent-encoded) as ``***``."""
    text = text.replace(url, without_password(url))
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote_plus(secret, safe="")}:
            text = text.replace(form, "***")
    return text
