"""Where the consumer's Hugging Face tokens come from, and the aliases everything else sees.

Tokens are read from the environment (and a secrets file) by this module only; they are never
`Settings` fields, because settings are printed, passed as command-line options and copied into
child environments. Redis, logs, metrics and the admin API see `alias` (a short hash prefix) and
`source` (the variable a token came from), never the token.

Sources, in this order, de-duplicated (the first source of a value names it):
HUGGING_FACE_TOKENS (comma list), HUGGING_FACE_TOKEN_1..N (any N, in numeric order),
HUGGING_FACE_TOKEN, HF_TOKEN, and the file in HUGGING_FACE_TOKENS_FILE (one per line, `#` comments).
No token at all means anonymous calls (the egress IP's quota).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobs.settings import SettingsError

__all__ = ["ANONYMOUS", "HfToken", "TokenConfigError", "TokenSet", "alias_of", "load_tokens"]

ANONYMOUS = "anonymous"
# User access tokens are "hf_" + 34 letters and digits; older ones were a little shorter.
_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{20,}")
_NUMBERED_RE = re.compile(r"HUGGING_FACE_TOKEN_(\d+)")


class TokenConfigError(SettingsError):
    """Tokens were configured but none can be used (or the tokens file cannot be read)."""


def alias_of(token: str) -> str:
    """A stable name for a token: the first 8 hex digits of its SHA-256 (32 bits reveal nothing)."""
    return "hf-" + hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class HfToken:
    """One configured token. `secret` stays out of repr, so logging the object cannot leak it."""

    alias: str
    source: str
    secret: str = field(repr=False)
    problem: str = ""  # why it cannot be used; empty when it can

    @property
    def usable(self) -> bool:
        return not self.problem


@dataclass(frozen=True, slots=True)
class TokenSet:
    """The usable tokens (in configuration order) and the malformed ones, reported by alias."""

    usable: tuple[HfToken, ...]
    rejected: tuple[HfToken, ...] = ()

    @property
    def anonymous(self) -> bool:
        return not self.usable and not self.rejected

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(t.alias for t in self.usable) or (ANONYMOUS,)

    def secret(self, alias: str) -> str | None:
        """The raw token of an alias; None for anonymous calls."""
        for token in self.usable:
            if token.alias == alias:
                return token.secret
        return None

    def secrets(self) -> tuple[str, ...]:
        """Every configured value, usable or not (to scrub them from error texts)."""
        return tuple(t.secret for t in (*self.usable, *self.rejected) if t.secret)


def problem_of(value: str) -> str:
    """Why a value is not a usable token, in words that never repeat the value; '' when fine."""
    if value.lower().startswith("bearer "):
        return "includes the 'Bearer ' prefix; configure the bare token"
    if value[0] in "\"'" or value[-1] in "\"'":
        return "is wrapped in quotes (an env file quoting mistake?)"
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return "contains spaces or control characters"
    if not value.isascii():
        return "contains non-ASCII characters"
    if not value.startswith("hf_"):
        return "does not start with hf_"
    if not _TOKEN_RE.fullmatch(value):
        return "is not hf_ followed by at least 20 letters and digits"
    return ""


def _from_environ(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for i, part in enumerate(environ.get("HUGGING_FACE_TOKENS", "").split(","), start=1):
        found.append((f"HUGGING_FACE_TOKENS[{i}]", part))
    numbered = sorted(
        (int(m.group(1)), name) for name in environ if (m := _NUMBERED_RE.fullmatch(name)) is not None
    )
    found.extend((name, environ[name]) for _, name in numbered)
    found.extend((name, environ.get(name, "")) for name in ("HUGGING_FACE_TOKEN", "HF_TOKEN"))
    return found


def _from_file(path: str) -> list[tuple[str, str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise TokenConfigError(
            f"invalid setting HUGGING_FACE_TOKENS_FILE (--hf-tokens-file): cannot read it ({reason})"
        ) from None
    found: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("#"):
            continue
        found.append((f"HUGGING_FACE_TOKENS_FILE:{number}", line))
    return found


def load_tokens(environ: Mapping[str, str], tokens_file: str = "") -> TokenSet:
    """Every configured token, de-duplicated, with malformed values set apart (by alias).

    Raises TokenConfigError when tokens were configured but none is usable: running anonymously
    instead would quietly spend the machine's IP quota, which nobody asked for.
    """
    candidates = _from_environ(environ) + (_from_file(tokens_file) if tokens_file else [])
    seen: set[str] = set()
    usable: list[HfToken] = []
    rejected: list[HfToken] = []
    for source, raw in candidates:
        value = raw.strip()
        if not value or value in seen:
            continue
        seen.add(value)
        token = HfToken(alias=alias_of(value), source=source, secret=value, problem=problem_of(value))
        (usable if token.usable else rejected).append(token)
    if rejected and not usable:
        listed = "; ".join(f"{t.source} ({t.alias}) {t.problem}" for t in rejected)
        raise TokenConfigError(f"no usable Hugging Face token: {listed}")
    return TokenSet(tuple(usable), tuple(rejected))
