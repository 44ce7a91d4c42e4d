"""Where input photos and results live: binary, stored once, expiring after a TTL.

Jobs refer to blobs by name ("in/<job id>", "out/<job id>/<attempt>"); the store maps names to
Redis keys or files. Redis is the default; a directory suits big deployments (S3 can come later).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = [
    "CONVERTED_FORMATS",
    "BlobStore",
    "FileBlobStore",
    "RedisBlobStore",
    "converted_name",
    "open_blob_store",
]

# A result converted on request (GET .../result?format=) is kept beside it as "<result>.<format>",
# expiring with it and erased with it.
CONVERTED_FORMATS = ("png", "jpeg", "webp")


def converted_name(result_key: str, fmt: str) -> str:
    return f"{result_key}.{fmt}"


class BlobStore(Protocol):
    async def put(self, name: str, data: bytes, ttl_s: int) -> None: ...
    async def get(self, name: str) -> bytes | None: ...
    async def delete(self, *names: str) -> None: ...


class RedisBlobStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def put(self, name: str, data: bytes, ttl_s: int) -> None:
        await self._redis.set(self._keys.blob(name), data, ex=ttl_s)

    async def get(self, name: str) -> bytes | None:
        data = await self._redis.get(self._keys.blob(name))
        return data if data is None or isinstance(data, bytes) else data.encode()

    async def delete(self, *names: str) -> None:
        if names:
            await self._redis.delete(*(self._keys.blob(n) for n in names))


class FileBlobStore:
    """Files under one directory; a file's mtime is set to its expiry time, so no index is needed.

    Photos are personal: files are 0600 and the directories this store makes 0700, whatever the
    process's umask, so other users of the machine (or of a shared volume) cannot read them.
    """

    FILE_MODE = 0o600
    DIR_MODE = 0o700

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root)

    def _path(self, name: str) -> Path:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"bad blob name: {name!r}")
        return self._root.joinpath(*parts)

    async def put(self, name: str, data: bytes, ttl_s: int) -> None:
        await anyio.to_thread.run_sync(self._put, self._path(name), data, ttl_s)

    def _put(self, path: Path, data: bytes, ttl_s: int) -> None:
        self._make_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.FILE_MODE)
        try:
            os.fchmod(fd, self.FILE_MODE)  # an existing leftover keeps its mode otherwise
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        expires = time.time() + ttl_s
        os.utime(tmp, (expires, expires))
        tmp.replace(path)

    def _make_dirs(self, directory: Path) -> None:
        """The directory and its missing parents below the root (and the root itself), all 0700."""
        missing: list[Path] = []
        while not directory.exists():
            missing.append(directory)
            if directory in (self._root, directory.parent):
                break
            directory = directory.parent
        for path in reversed(missing):
            path.mkdir(mode=self.DIR_MODE, exist_ok=True)
            path.chmod(self.DIR_MODE)

    async def get(self, name: str) -> bytes | None:
        return await anyio.to_thread.run_sync(self._get, self._path(name))

    @staticmethod
    def _get(path: Path) -> bytes | None:
        try:
            if path.stat().st_mtime < time.time():
                path.unlink(missing_ok=True)
                return None
            return path.read_bytes()
        except FileNotFoundError:
            return None

    async def delete(self, *names: str) -> None:
        for name in names:
            await anyio.to_thread.run_sync(self._path(name).unlink, True)

    async def sweep(self) -> int:
        """Delete expired files; returns how many."""
        return await anyio.to_thread.run_sync(self._sweep)

    def _sweep(self) -> int:
        now, removed = time.time(), 0
        for path in self._root.rglob("*"):
            if path.is_file() and path.stat().st_mtime < now:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def open_blob_store(redis: Redis, keys: Keys, blob_dir: str) -> BlobStore:
    return FileBlobStore(blob_dir) if blob_dir else RedisBlobStore(redis, keys)
