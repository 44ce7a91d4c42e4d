"""structlog set-up shared by every process: JSON when not on a terminal, cheap sync chain.

Libraries that log through the standard `logging` module (gradio_client, httpx, redis) are routed
through the same renderer, so every line of a process is one format. A last processor scrubs
anything shaped like an HF token, an API key, a webhook secret or a bearer secret and replaces raw
bytes by their length: the code never logs those on purpose, and this keeps a mistake from leaking them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "scrub_secrets"]

_SECRET_RE = re.compile(
    r"hf_[A-Za-z0-9]{8,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|gk_[A-Za-z0-9_-]{16,}|whsec_[A-Za-z0-9+/=]{16,}"  # API keys and webhook secrets (jobs/apikeys.py)
)


_MAX_DEPTH = 8


def _scrub(value: Any, depth: int = 0) -> Any:
    """The value with secrets redacted and bytes replaced, at any depth of dicts, lists, tuples
    and sets (a secret in `headers={"authorization": ...}` is as secret as one at the top)."""
    if isinstance(value, str):
        return _SECRET_RE.sub("[redacted]", value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if depth >= _MAX_DEPTH and isinstance(value, dict | list | tuple | set | frozenset):
        return "<nested too deep>"
    if isinstance(value, dict):
        return {_scrub(k, depth + 1): _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item, depth + 1) for item in value]
    if isinstance(value, BaseException):
        return _scrub(repr(value), depth + 1)
    return value


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so configuring again replaces it instead of adding a second one."""


def scrub_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no token, bearer secret or binary payload reaches a log line."""
    for key, value in event.items():
        event[key] = _scrub(value)
    return event


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors: list[structlog.typing.Processor] = [
        *shared,
        structlog.processors.format_exc_info,
        scrub_secrets,
        renderer,
    ]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # The standard library's records (libraries) through the same chain and renderer.
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                scrub_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    if any(not isinstance(h, _StderrHandler) for h in root.handlers):
        return  # someone else (pytest's log capture, an embedding app) owns the root logger
    root.handlers[:] = [handler]
    # Libraries chat at INFO (every HTTP request of httpx); their warnings and errors matter.
    root.setLevel(max(numeric_level, logging.WARNING))


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(module=name)
    return logger
