"""What a check of `ghibli doctor` found: a level, a topic, what is wrong and what to do.

Kept free of heavy imports: the container HEALTHCHECK probes use it every few seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Finding", "Level", "fail", "ok", "warn"]


class Level(enum.IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    topic: str
    message: str
    fix: str = ""


def ok(topic: str, message: str) -> Finding:
    return Finding(Level.OK, topic, message)


def warn(topic: str, message: str, fix: str) -> Finding:
    return Finding(Level.WARN, topic, message, fix)


def fail(topic: str, message: str, fix: str) -> Finding:
    return Finding(Level.FAIL, topic, message, fix)
