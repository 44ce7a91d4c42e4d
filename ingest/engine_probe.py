"""Which engine this server's jobs go to (jobs/engine.py), kept current for `/readyz`, new jobs and
the page's demo notice.

A Hugging Face Space id names itself. Behind a URL, the Gradio app's `/config` title tells the
offline demo engine from a self-hosted copy of the model; it is read at start-up (a short time-out,
so a dead URL delays nothing) and again every few minutes, sooner while it cannot be reached. Ingest
never calls the Space otherwise. The answer is bounded in size: it comes from another process.
"""

from __future__ import annotations

import logging

import anyio
import httpx
import msgspec

from jobs.engine import EngineInfo, engine_from_title, engine_without_probe
from jobs.logs import get_logger

__all__ = ["EngineProbe"]

log = get_logger("ingest.engine_probe")
# httpx logs every request at INFO; jobs/logs.py keeps libraries at WARNING, but Litestar's own
# logging set-up puts the root logger back to INFO in ingest's processes (plain text, not JSON).
logging.getLogger("httpx").setLevel(logging.WARNING)

_TIMEOUT = httpx.Timeout(3.0)
_MAX_CONFIG_BYTES = 4 * 1024 * 1024
_RECHECK_S = 300.0
_RECHECK_UNKNOWN_S = 15.0


class _Config(msgspec.Struct):
    title: str = ""


class EngineProbe:
    """The current engine; `refresh` asks the app behind a URL, `run` keeps asking."""

    def __init__(self, space: str) -> None:
        self.space = space
        fixed = engine_without_probe(space)
        self.needs_probe = fixed is None
        self.current: EngineInfo = fixed or engine_from_title(None)

    async def refresh(self) -> EngineInfo:
        if self.needs_probe:
            found = engine_from_title(await self._title())
            if found != self.current:
                log.info("engine identified", kind=found.kind, name=found.name)
            self.current = found
        return self.current

    async def run(self) -> None:
        while self.needs_probe:
            await anyio.sleep(_RECHECK_UNKNOWN_S if self.current.kind == "unknown" else _RECHECK_S)
            await self.refresh()

    async def _title(self) -> str | None:
        url = self.space.rstrip("/") + "/config"
        try:
            async with (
                httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=False) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    return None
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_CONFIG_BYTES:
                        return None
            return msgspec.json.decode(bytes(body), type=_Config).title
        except (httpx.HTTPError, msgspec.DecodeError, OSError):
            return None
