"""The Lua scripts behind every multi-key write, loaded from jobs/lua/.

Writes that must agree (job hash + stream entry; status + XACK) run as one script, so a crash
between them cannot leave a job half-written. Each script's contract is in its own header; every
script gets prelude.lua (is_terminal, emit, hset_pairs) prepended, and before it
webhook_capture.lua (emit records webhook events of subscribed jobs).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["Scripts", "load_script"]


@cache
def _source(name: str) -> str:
    lua = resources.files("jobs") / "lua"
    parts = ("webhook_capture.lua", "prelude.lua", f"{name}.lua")  # emit() calls webhook_capture
    return "\n".join((lua / part).read_text() for part in parts)


def load_script(redis: Redis, name: str) -> AsyncScript:
    """jobs/lua/<name>.lua with the prelude, registered on this client (EVALSHA, reloaded on NOSCRIPT)."""
    return redis.register_script(_source(name))


class Scripts:
    """The job store's scripts."""

    def __init__(self, redis: Redis) -> None:
        self.claim = load_script(redis, "claim")
        self.update = load_script(redis, "update")
        self.finish = load_script(redis, "finish")
        self.ack = load_script(redis, "ack")
        self.cancel = load_script(redis, "cancel")
