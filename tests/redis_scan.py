"""Every key and stored value of a Redis, for the tests that prove no secret is kept there."""

from __future__ import annotations

from redis import Redis

__all__ = ["redis_contents"]


def _raw(value: object) -> bytes:
    assert isinstance(value, bytes), f"expected bytes from Redis, got {type(value).__name__}"
    return value


def redis_contents(url: str) -> list[tuple[str, bytes]]:
    """(key, value) for every key itself and every value under it: strings, hashes, lists, sets,
    sorted sets and streams (entry ids, field names and values). Any other type fails the scan, so
    a new kind of key cannot hide a secret from it."""
    client = Redis.from_url(url)
    found: list[tuple[str, bytes]] = []
    try:
        for raw in client.scan_iter(count=500):
            key = _raw(raw).decode()
            kind = _raw(client.type(raw)).decode()
            values: list[object] = [raw]
            if kind == "string":
                values.append(client.get(raw) or b"")
            elif kind == "hash":
                for field, value in client.hgetall(raw).items():
                    values += [field, value]
            elif kind == "list":
                values += client.lrange(raw, 0, -1)
            elif kind == "set":
                values += client.smembers(raw)
            elif kind == "zset":
                values += client.zrange(raw, 0, -1)
            elif kind == "stream":
                for entry_id, fields in client.xrange(raw) or []:
                    values.append(entry_id)
                    for field, value in (fields or {}).items():
                        values += [field, value]
            else:
                raise AssertionError(f"unexpected key type {kind} of {key!r}")
            found += [(key, _raw(value)) for value in values]
    finally:
        client.close()
    return found
