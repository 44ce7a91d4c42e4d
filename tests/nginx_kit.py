"""A real nginx for tests: find it, render a config of ops/nginx/ for loopback, run it.

Configs run as written except for what ties them to a machine (upstream hosts, listen ports,
certificate paths), which each test replaces with `replace_once` so that a changed file fails
loudly instead of being silently left untested.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.procs import port_open, wait_until

__all__ = [
    "PROXY_ADDRESS",
    "bind_to_proxy_address",
    "nginx_binary",
    "nginx_version",
    "replace_once",
    "running",
]

# nginx connects upstream from this address, so ingest can tell the proxy (127.0.0.2) from the
# clients (other 127.0.0.x addresses) on one host.
PROXY_ADDRESS = "127.0.0.2"


def nginx_binary() -> str:
    for candidate in ("/usr/sbin/nginx", shutil.which("nginx") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("nginx is not installed (scripts/test installs Debian's nginx-light)")


def nginx_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=True).stderr
    return tuple(int(n) for n in re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out).groups())  # type: ignore[union-attr]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the nginx config no longer has exactly one {old!r}"
    return text.replace(old, new)


def bind_to_proxy_address(conf: str) -> str:
    return replace_once(
        conf, "proxy_http_version 1.1;", f"proxy_http_version 1.1;\n    proxy_bind {PROXY_ADDRESS};"
    )


def write_main(tmp: Path, server_conf: str) -> Path:
    """nginx.conf for an unprivileged run in `tmp` that includes `server_conf`."""
    (tmp / "server.conf").write_text(server_conf)
    temp = "\n".join(
        f"  {kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp / "nginx.conf"
    main.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
        + "events { worker_connections 256; }\n"
        + f"http {{\n  access_log off;\n{temp}\n  include {tmp}/server.conf;\n}}\n"
    )
    return main


@contextmanager
def running(binary: str, tmp: Path, server_conf: str, port: int) -> Iterator[None]:
    """nginx with `server_conf`, checked with `nginx -t` first, until the block ends."""
    main = write_main(tmp, server_conf)
    check = subprocess.run(
        [binary, "-t", "-c", str(main), "-e", str(tmp / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    nginx = subprocess.Popen(
        [binary, "-c", str(main), "-e", str(tmp / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open(port), "nginx", 30, nginx)  # type: ignore[arg-type]
        yield
    finally:
        nginx.terminate()
        nginx.wait(20)
