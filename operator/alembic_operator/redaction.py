"""The one redactor: removes credentials from every text the project emits.

Every message, log line, Event, status field and metric label passes through :class:`Redactor`
before it leaves the process. It is embedded in the runner's zipapp that runs inside application
images, so it must import only the standard library and nothing of ours.
"""

from __future__ import annotations

import json
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
# password=..., PGPASSWORD: ..., "password": "..." — but not MySQL's "(using password: YES)",
# which says whether a password was sent, not what it is.
_KEY_VALUE = re.compile(
    r"(?P<key>(?i:\b(?:pg)?(?:password|passwd|pwd)\b)[\"']?\s*[=:]\s*)"
    r"(?!(?:YES|NO)\))"
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
    """Each secret in every form it takes in text, longest first.

    As written, URL-quoted (urllib's and SQLAlchemy's rules), %-doubled (configparser), and
    escaped inside a quoted literal: ``repr()`` (either quote), JSON (ASCII or not), and the
    ``repr()`` of its UTF-8 bytes — the forms an exception message or a log line carries.
    """
    out: set[str] = set()
    for secret in secrets:
        if len(secret) < MIN_LITERAL_SECRET_LENGTH:
            continue
        escaped = secret.replace("\\", "\\\\")
        out.update(
            {
                secret,
                quote(secret, safe=""),
                quote_plus(secret),
                _SQLALCHEMY_QUOTED.sub(lambda m: f"%{ord(m.group(0)):02X}", secret),
                secret.replace("%", "%%"),
                repr(secret)[1:-1],
                escaped.replace("'", "\\'"),
                escaped.replace('"', '\\"'),
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
                repr(secret.encode("utf-8"))[2:-1],
            }
        )
    return tuple(sorted(out, key=len, reverse=True))


# What SQLAlchemy's URL rendering escapes in a password (render_as_string(hide_password=False)).
_SQLALCHEMY_QUOTED = re.compile(r"[@:/%]")


def truncate_utf8(text: str, limit: int, *, marker: str = "…") -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes, keeping the end (where errors are)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    budget = max(limit - len(marker.encode("utf-8")), 0)
    tail = data[len(data) - budget :].decode("utf-8", errors="ignore")
    return marker + tail


def truncate_middle_utf8(text: str, limit: int, *, head: int = 600, marker: str = " … ") -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes, keeping its start and its end.

    A message starts with what happened ("revision X failed; database left at Y") and ends with
    the error's last words: a huge error in the middle must not push either out.
    """
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    budget = max(limit - len(marker.encode("utf-8")), 0)
    head = min(head, budget // 2)
    start = data[:head].decode("utf-8", errors="ignore")
    end = data[len(data) - (budget - head) :].decode("utf-8", errors="ignore") if budget else ""
    return start + marker + end
