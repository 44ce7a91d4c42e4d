"""API keys: who may submit jobs, how fast, how many unfinished at once, how their webhooks are signed.

Keys are configured as entries, in GHIBLI_API_KEYS (entries separated by ';' or new lines) and/or
GHIBLI_API_KEYS_FILE (one entry per line, # comments), for example:

    id=shop,sha256=<64 hex digits>,rate=60,max_unfinished=20,webhook_secret=whsec_...

An entry holds the SHA-256 of the key, never the key. Keys are 256 random bits, so one fast hash is
the right tool (there is nothing to brute-force; slow password hashes exist for guessable secrets).
`ghibli keys create` makes a key, prints it once and prints its entry. A key id is what logs, metrics
labels, the job hash and admin views show; `webhook_secret` may be given twice while rotating it
(deliveries then carry both signatures).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.webhook_signing import SecretError, WebhookSecret

if TYPE_CHECKING:
    from jobs.settings import Settings

__all__ = [
    "ANONYMOUS",
    "KEY_PREFIX",
    "ApiKey",
    "KeyRing",
    "entry_line",
    "key_digest",
    "load_key_ring",
    "new_key",
    "parse_entries",
    "webhook_secrets_for",
]

KEY_PREFIX = "gk_"
KEY_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# What logs and metrics say for callers without a key; never a valid key id.
ANONYMOUS = "anonymous"
_FIELDS = frozenset({"id", "sha256", "rate", "max_unfinished", "webhook_secret"})


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new API key: the prefix (so scanners and our log scrubber recognise it) + 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One configured key. `rate_per_minute` and `max_unfinished` of 0 mean no limit."""

    id: str
    digest: str = field(repr=False)
    rate_per_minute: int = 60
    max_unfinished: int = 20
    webhook_secrets: tuple[WebhookSecret, ...] = ()


def entry_line(key: ApiKey) -> str:
    """The configuration entry of a key (what `ghibli keys create` prints)."""
    parts = [
        f"id={key.id}",
        f"sha256={key.digest}",
        f"rate={key.rate_per_minute}",
        f"max_unfinished={key.max_unfinished}",
        *(f"webhook_secret={s.serialize()}" for s in key.webhook_secrets),
    ]
    return ",".join(parts)


def _int(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise ValueError(f"{name} must be a whole number >= 0 (0: no limit); got {raw[:20]!r}")
    return int(raw)


def _parse_entry(text: str) -> ApiKey:
    values: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in _FIELDS:
            raise ValueError(f"unknown part {name[:20]!r} (expected {', '.join(sorted(_FIELDS))})")
        values.setdefault(name, []).append(value.strip())
    for name, found in values.items():
        if len(found) > 1 and name != "webhook_secret":
            raise ValueError(f"{name} given twice")
    key_id = values.get("id", [""])[0]
    if not KEY_ID.fullmatch(key_id) or key_id == ANONYMOUS:
        raise ValueError("id must be 1-32 of a-z, 0-9, '_' and '-', starting with a letter or digit")
    digest = values.get("sha256", [""])[0].lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"key {key_id!r}: sha256 must be 64 hex digits (the key's SHA-256, never the key)")
    webhook_secrets: list[WebhookSecret] = []
    for raw in values.get("webhook_secret", []):
        try:
            webhook_secrets.append(WebhookSecret.parse(raw))
        except SecretError as exc:
            raise ValueError(f"key {key_id!r}: {exc}") from None
    return ApiKey(
        id=key_id,
        digest=digest,
        rate_per_minute=_int("rate", values["rate"][0]) if "rate" in values else 60,
        max_unfinished=_int("max_unfinished", values["max_unfinished"][0])
        if "max_unfinished" in values
        else 20,
        webhook_secrets=tuple(webhook_secrets),
    )


def parse_entries(text: str, *, lines_only: bool = False) -> list[ApiKey]:
    """Entries from text: one per line (and, unless lines_only, also separated by ';'); # comments.

    Raises ValueError naming the entry's position (never echoing a secret).
    """
    keys: list[ApiKey] = []
    rows = text.splitlines() if lines_only else re.split(r"[;\n]", text)
    for number, row in enumerate(rows, start=1):
        entry = row.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            keys.append(_parse_entry(entry))
        except ValueError as exc:
            raise ValueError(f"entry {number}: {exc}") from None
    return keys


class KeyRing:
    """The configured keys, looked up by the SHA-256 of a presented key or by id.

    A dictionary look-up by digest leaks nothing useful through timing: learning which digests
    exist would need SHA-256 preimages.
    """

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._by_digest: dict[str, ApiKey] = {}
        self._by_id: dict[str, ApiKey] = {}
        for key in keys:
            if key.id in self._by_id:
                raise ValueError(f"key id {key.id!r} configured twice")
            if key.digest in self._by_digest:
                raise ValueError(f"keys {self._by_digest[key.digest].id!r} and {key.id!r} are the same key")
            self._by_digest[key.digest] = key
            self._by_id[key.id] = key

    @property
    def configured(self) -> bool:
        return bool(self._by_id)

    @property
    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def authenticate(self, presented: str) -> ApiKey | None:
        return self._by_digest.get(key_digest(presented))

    def get(self, key_id: str) -> ApiKey | None:
        return self._by_id.get(key_id)


def load_key_ring(settings: Settings) -> KeyRing:
    """The keys of GHIBLI_API_KEYS and GHIBLI_API_KEYS_FILE; SettingsError names the bad one."""
    from jobs.settings import SettingsError

    keys: list[ApiKey] = []
    try:
        keys += parse_entries(settings.api_keys)
    except ValueError as exc:
        raise SettingsError(f"invalid setting GHIBLI_API_KEYS: {exc}") from None
    if settings.api_keys_file:
        where = "invalid setting GHIBLI_API_KEYS_FILE (--api-keys-file)"
        try:
            text = Path(settings.api_keys_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"{where}: cannot read it ({exc.strerror})") from None
        try:
            keys += parse_entries(text, lines_only=True)
        except ValueError as exc:
            raise SettingsError(f"{where}: {exc}") from None
    try:
        return KeyRing(keys)
    except ValueError as exc:
        raise SettingsError(f"invalid API keys: {exc}") from None


def webhook_secrets_for(key: ApiKey | None, fallback: WebhookSecret | None) -> tuple[WebhookSecret, ...]:
    """What a caller's webhooks are signed with: its key's secrets, else the server's (if any)."""
    if key is not None and key.webhook_secrets:
        return key.webhook_secrets
    return (fallback,) if fallback is not None else ()
