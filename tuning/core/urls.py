"""Secrets in URLs (a shared Optuna storage's database URL): found, hidden, and redacted from
messages, since study files and logs get shared."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

# Query parameters of a database URL that hold a credential (libpq's and the drivers' names).
SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|credential|auth", re.IGNORECASE)


def url_secrets(url: str) -> list[str]:
    """The secrets a URL holds: the password of its user-info and the value of each query
    parameter that names a credential (``password=``, ``sslpassword=``, ``token=``...)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # an unparsable netloc (a bad port): take the user-info as it is written
        parts, password = None, None
        userinfo = url.partition("://")[2].partition("@")
        if userinfo[1]:
            password = userinfo[0].partition(":")[2] or None
    secrets = [password] if password else []
    query = parts.query if parts is not None else url.partition("?")[2]
    for name, value in parse_qsl(query, keep_blank_values=True):
        if value and SECRET_PARAMETER.search(name):
            secrets.append(value)
    return secrets


def without_password(url: str) -> str:
    """``url`` with every secret it holds (`url_secrets`) shown as ``***``, rebuilt part by
    part: the user-info's password, then each credential parameter's value."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    location, slash, tail = rest.partition("/")
    userinfo, at, host = location.rpartition("@")
    if at and ":" in userinfo:
        location = f"{userinfo.partition(':')[0]}:***@{host}"
    path, question, query = tail.partition("?")
    if question:
        query = "&".join(
            f"{name}=***" if value and SECRET_PARAMETER.search(name) else pair
            for pair in query.split("&")
            for name, _, value in [pair.partition("=")]
        )
    return f"{scheme}{sep}{location}{slash}{path}{question}{query}"


def redact(text: str, url: str) -> str:
    """``text``, a message that may quote the URL, with the URL shown by `without_password` and
    any other appearance of one of its secrets (raw or percent-encoded) as ``***``."""
    text = text.replace(url, without_password(url))
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote_plus(secret, safe="")}:
            text = text.replace(form, "***")
    return text
