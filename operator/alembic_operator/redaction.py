"""The one redactor: removes credentials from every text the project emits.

Every message, log line, Event, status field and metric label passes through :class:`Redactor`
before it leaves the process. It is embedded verbatim into the single-file runner that runs inside
application images, so it must import only the standard library and nothing of ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote

MASK = "***"

# Secrets shorter than this are masked only where a pattern marks them as credentials: masking
# every occurrence of a two-letter password would garble all text and protect nothing.
MIN_LITERAL_SECRET_LENGTH = 4

# scheme://user:password@host — greedy up to the last "@" of the token, so a password with an
# unescaped "@" is still masked whole.
_URL_CREDENTIALS = re.compile(
    r"(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"<>]*:)(?P<password>[^\s'\"<>]*)@"
)
# password=..., PGPASSWORD: ..., "password": "..."
_KEY_VALUE = re.compile(
    r"(?P<key>(?i:\b(?:pg)?(?:password|passwd|pwd)\b)[\"']?\s*[=:]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&)\"']+)"
)


@dataclass(frozen=True)
class Redactor:
    """Masks known secrets (in the forms they can take in text) and credential-shaped patterns."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def for_url(cls, url: str | None) -> Redactor:
        """A redactor that knows the password (and the whole URL) of a database URL."""
        if not url:
            return cls()
        found = [url]
        match = _URL_CREDENTIALS.search(url)
        if match:
            raw = match.group("password")
            found += [raw, unquote(raw)]
        return cls(secrets=_variants(found))

    def with_secrets(self, *secrets: str) -> Redactor:
        return Redactor(secrets=_variants([*self.secrets, *secrets]))

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('prefix')}{MASK}@", text)
        return _KEY_VALUE.sub(lambda m: f"{m.group('key')}{MASK}", text)


def _variants(secrets: list[str]) -> tuple[str, ...]:
    """Each secret as written, URL-quoted and %-doubled (configparser), longest first."""
    out: set[str] = set()
    for secret in secrets:
        if len(secret) < MIN_LITERAL_SECRET_LENGTH:
            continue
        out.update({secret, quote(secret, safe=""), quote_plus(secret), secret.replace("%", "%%")})
    return tuple(sorted(out, key=len, reverse=True))


def truncate_utf8(text: str, limit: int, *, marker: str = "…") -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes, keeping the end (where errors are)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    budget = max(limit - len(marker.encode("utf-8")), 0)
    tail = data[len(data) - budget :].decode("utf-8", errors="ignore")
    return marker + tail
