"""Is a TCP port free to listen on, and if not, which program holds it (Linux /proc, where readable).

`ghibli up` checks every port before it starts anything, so a taken port is one clear message
instead of a child that dies after `up` said the stack was up.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from pathlib import Path

__all__ = ["holder", "port_free"]

_LISTEN = "0A"


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (as uvicorn, Gradio and Redis bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Like the servers: a port whose old connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def holder(port: int) -> str | None:
    """'name (pid N)' of the process listening on this port, when /proc says and lets us see it."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if len(parts) > 9 and parts[3] == _LISTEN and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(parts[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if str(fd.readlink()) in wanted:
                    name = (proc / "comm").read_text().strip()
                    return f"{name} (pid {proc.name})"
        except OSError:  # gone, or another user's process
            continue
    return None
