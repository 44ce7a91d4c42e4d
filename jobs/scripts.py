"""The Lua scripts behind every multi-key write, loaded once per Redis client.

Writes that must agree (job hash + stream entry; status + XACK) run as one script, so a crash
between them cannot leave a job half-written. Each script's contract is in its own header.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["Scripts"]


@cache
def _source(name: str) -> str:
    lua = resources.files("jobs") / "lua"
    return (lua / "prelude.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Scripts:
    """The registered scripts; redis-py runs them with EVALSHA and reloads after a restart."""

    def __init__(self, redis: Redis) -> None:
        self.create: AsyncScript = redis.register_script(_source("create"))
        self.claim: AsyncScript = redis.register_script(_source("claim"))
        self.update: AsyncScript = redis.register_script(_source("update"))
        self.finish: AsyncScript = redis.register_script(_source("finish"))
        self.ack: AsyncScript = redis.register_script(_source("ack"))
        self.cancel: AsyncScript = redis.register_script(_source("cancel"))
