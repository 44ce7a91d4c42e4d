"""Which painting engine a server sends its jobs to, as users are told (`/readyz`, the status JSON,
the page's demo notice).

Three kinds, plus "unknown" while a URL cannot be reached:
- `space`: a Hugging Face Space (an id such as `jamesliu1217/EasyControl_Ghibli`, or a *.hf.space URL);
- `offline-demo`: our CPU stylizer in `space/`, recognised by the title its Gradio app declares;
- `self-hosted`: any other Gradio app with the Space's API (a copy of EasyControl on one's own GPU).

The name never carries the Space's URL: it may be an internal address or hold credentials.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

import msgspec

from space.title import OFFLINE_DEMO_TITLE, offline_demo_title

__all__ = [
    "OFFLINE_DEMO_TITLE",
    "EngineInfo",
    "EngineKind",
    "engine_from_title",
    "engine_without_probe",
    "offline_demo_title",
]

EngineKind = Literal["offline-demo", "space", "self-hosted", "unknown"]

# What copies started before the title carried the mark call themselves.
_OLDER_OFFLINE_TITLE = "EasyControl Ghibli (offline)"
_NAME_MAX = 80


class EngineInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The painting engine: its kind and a name to show (a Space id or an app's title). `kind` is
    one of EngineKind; clients should treat a kind they do not know as "unknown"."""

    kind: str
    name: str

    @property
    def is_demo(self) -> bool:
        return self.kind == "offline-demo"


def engine_without_probe(space: str) -> EngineInfo | None:
    """The engine of a GHIBLI_SPACE value when the value alone says it; None when the app behind
    a URL must be asked (its title)."""
    if not space.startswith(("http://", "https://")):
        return EngineInfo(kind="space", name=space)
    host = urlsplit(space).hostname or ""
    if host.endswith(".hf.space"):
        return EngineInfo(kind="space", name=host.removesuffix(".hf.space"))
    return None


def engine_from_title(title: str | None) -> EngineInfo:
    """The engine behind a URL, from its Gradio app's title (None: the app did not answer)."""
    if title is None:
        return EngineInfo(kind="unknown", name="")
    shown = "".join(ch for ch in title if ch.isprintable()).strip()[:_NAME_MAX]
    if shown.startswith(OFFLINE_DEMO_TITLE) or shown == _OLDER_OFFLINE_TITLE:
        return EngineInfo(kind="offline-demo", name=shown)
    return EngineInfo(kind="self-hosted", name=shown or "Gradio app")
