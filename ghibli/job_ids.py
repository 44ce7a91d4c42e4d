"""Job ids from what people type: a full id, or (git-style) a unique prefix of a job this CLI
submitted (ghibli/history.py). The server is never asked to complete a prefix: ids are
capabilities, and a server that completed prefixes would hand other people's jobs to guessers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["FULL_ID", "IdError", "resolve_ids", "short_ids"]

FULL_ID = re.compile(r"[0-9a-f]{32}")
_PREFIX = re.compile(r"[0-9a-f]{1,31}")
_SHORT = 8  # like git's abbreviations: long enough to stay unique among one person's jobs
_SHOWN_CANDIDATES = 8


class IdError(ValueError):
    """Not a job id, an unknown prefix, or an ambiguous one (the message names the candidates)."""


def resolve_ids(typed: Sequence[str], known: Iterable[str], where: str) -> list[str]:
    """Each typed id as a full id; `known` are the ids a prefix may complete to, `where` says
    where they come from (for the messages)."""
    pool = sorted(set(known))
    resolved: list[str] = []
    for raw in typed:
        text = raw.strip().lower()
        if FULL_ID.fullmatch(text):
            resolved.append(text)
            continue
        if not _PREFIX.fullmatch(text):
            raise IdError(f"{raw!r} is not a job id (32 hex digits) or the start of one")
        matches = [job_id for job_id in pool if job_id.startswith(text)]
        if not matches:
            raise IdError(f"no job starting with {text!r} among {where}; give the full 32-digit id")
        if len(matches) > 1:
            listed = ", ".join(matches[:_SHOWN_CANDIDATES])
            more = f" and {len(matches) - _SHOWN_CANDIDATES} more" if len(matches) > _SHOWN_CANDIDATES else ""
            raise IdError(f"id prefix {text!r} is ambiguous: {listed}{more}")
        resolved.append(matches[0])
    return resolved


def short_ids(ids: Sequence[str], known: Iterable[str]) -> dict[str, str]:
    """The shortest prefix (at least 8 digits) of each id that no other known id shares."""
    others = sorted(set(known) | set(ids))
    short: dict[str, str] = {}
    for job_id in ids:
        length = _SHORT
        while length < len(job_id) and any(o != job_id and o.startswith(job_id[:length]) for o in others):
            length += 1
        short[job_id] = job_id[:length]
    return short
