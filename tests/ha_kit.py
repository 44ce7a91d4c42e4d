"""Real Redis topologies on loopback for the HA tests: a primary with replicas watched by three
sentinels, and a three-master cluster (plus a replica of the slot owner, so it can fail over).

Everything is Debian's redis-server (7.0), sentinels included (`redis-server sentinel.conf
--sentinel`), on free ports, each in its own directory; `stop()` ends every process it started.
Fail-over timings are shortened (down-after 1000 ms, cluster-node-timeout 1000 ms) to keep tests
short; production values are in docs/redis-ha.md.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_sync
from redis.crc import key_slot

from tests.procs import RedisServer, free_port, redis_binary, redis_ready, wait_until

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000
NODE_TIMEOUT_MS = 1000


def client(port: int) -> redis_sync.Redis:
    return redis_sync.Redis(port=port, socket_timeout=3, decode_responses=True)


def info(port: int, section: str) -> dict[str, object]:
    with client(port) as c:
        found: dict[str, object] = c.info(section)
        return found


def raw(port: int, *command: str) -> str:
    """A command's reply as the server sent it (redis-py would parse CLUSTER NODES/INFO into dicts)."""
    with client(port) as c:
        conn = c.connection_pool.get_connection()
        try:
            conn.send_command(*command)
            return str(conn.read_response())
        finally:
            c.connection_pool.release(conn)


@dataclass
class Sentinel:
    workdir: Path
    monitored_port: int
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sentinel:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "sentinel.conf"  # sentinels rewrite their config: one each
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"logfile {self.workdir / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.monitored_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 2\n"
        )
        self.proc = subprocess.Popen(
            [redis_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(lambda: redis_ready(self.port), f"sentinel :{self.port}", 15, self.proc)
        return self

    def master(self) -> dict[str, object]:
        with client(self.port) as c:
            state: dict[str, object] = c.sentinel_master(SERVICE)
            return state

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class SentinelSet:
    """One primary, `replicas` replicas and three sentinels (quorum 2)."""

    workdir: Path
    replicas: int = 2
    servers: list[RedisServer] = field(default_factory=list)
    sentinels: list[Sentinel] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> SentinelSet:
        primary = RedisServer(self.workdir / "r0", appendonly=True).start()
        self.servers.append(primary)
        for i in range(1, self.replicas + 1):
            extra = ("--replicaof", "127.0.0.1", str(primary.port))
            self.servers.append(RedisServer(self.workdir / f"r{i}", appendonly=True, extra=extra).start())
        for server in self.servers[1:]:
            wait_until(
                lambda s=server: info(s.port, "replication")["master_link_status"] == "up", "replica", 30
            )
        for i in range(3):
            self.sentinels.append(Sentinel(self.workdir / f"s{i}", primary.port).start())
        wait_until(self._settled, "sentinels to find each other and the replicas", 60)
        return self

    def _settled(self) -> bool:
        for sentinel in self.sentinels:
            state = sentinel.master()
            if int(str(state["num-other-sentinels"])) < 2 or int(str(state["num-slaves"])) < self.replicas:
                return False
        return True

    def primary_port(self) -> int:
        """The primary the sentinels name now."""
        for sentinel in self.sentinels:
            try:
                with client(sentinel.port) as c:
                    _host, port = c.sentinel_get_master_addr_by_name(SERVICE)
                    return int(port)
            except redis_sync.RedisError:
                continue
        raise RuntimeError("no sentinel answers")

    def server(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def wait_for_new_primary(self, old_port: int, timeout_s: float = 60) -> int:
        """Until the sentinels name another primary and it acts as one; its port."""

        def switched() -> bool:
            port = self.primary_port()
            return port != old_port and info(port, "replication")["role"] == "master"

        wait_until(switched, "fail-over", timeout_s)
        return self.primary_port()

    def force_failover(self) -> None:
        with client(self.sentinels[0].port) as c:
            c.execute_command("SENTINEL", "FAILOVER", SERVICE)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()


@dataclass
class ClusterSet:
    """Three masters with the slots split in three (CLUSTER ADDSLOTSRANGE), and two replicas of the
    master that owns the slot of `hash_tag`: that master can be killed and replaced, and the new one
    still has a replica (for GHIBLI_DURABLE_REPLICAS=1), as with Sentinel."""

    workdir: Path
    replicas: int = 2
    hash_tag: str = "ghibli"
    nodes: list[RedisServer] = field(default_factory=list)
    bus_ports: dict[int, int] = field(default_factory=dict)

    def _node(self, name: str) -> RedisServer:
        bus = free_port()  # the default, port + 10000, is past 65535 for most free ports
        extra = (
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-port", str(bus)),
            # Both replicas stay with the jobs' shard (Redis would move one to a shard without any).
            *("--cluster-allow-replica-migration", "no"),
        )
        node = RedisServer(self.workdir / name, appendonly=True, extra=extra).start()
        self.bus_ports[node.port] = bus
        self.nodes.append(node)
        return node

    def _meet(self, node: RedisServer, other: RedisServer) -> None:
        with client(node.port) as c:
            c.execute_command("CLUSTER", "MEET", "127.0.0.1", other.port, self.bus_ports[other.port])

    def start(self) -> ClusterSet:
        masters = [self._node(f"m{i}") for i in range(3)]
        for epoch, master in enumerate(masters, start=1):
            with client(master.port) as c:
                c.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for other in masters[1:]:
            self._meet(masters[0], other)
        for master, (first, last) in zip(masters, ((0, 5460), (5461, 10922), (10923, 16383)), strict=True):
            with client(master.port) as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        wait_until(self._all_ok, "cluster state ok everywhere", 60)
        owner = self.owner_port()
        owner_id = self._node_id(owner)
        for i in range(self.replicas):
            replica = self._node(f"replica{i}")
            self._meet(replica, self.server(owner))
            wait_until(
                lambda r=replica: owner_id in self._nodes_text(r.port), "replica to learn the cluster", 30
            )
            with client(replica.port) as c:
                c.execute_command("CLUSTER", "REPLICATE", owner_id)
            wait_until(
                lambda r=replica: info(r.port, "replication").get("master_link_status") == "up", "replica", 30
            )
        wait_until(self._all_ok, "cluster state ok everywhere", 30)
        return self

    @property
    def slot(self) -> int:
        return key_slot(self.hash_tag.encode())

    def _nodes_text(self, port: int) -> str:
        return raw(port, "CLUSTER", "NODES")

    def _node_id(self, port: int) -> str:
        with client(port) as c:
            node_id: str = c.execute_command("CLUSTER", "MYID")
            return node_id

    def _all_ok(self) -> bool:
        alive = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        return all("cluster_state:ok" in raw(n.port, "CLUSTER", "INFO") for n in alive)

    def owner_port(self) -> int:
        """The master that owns the slot now, as a live node sees it (CLUSTER NODES)."""
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                continue
            for line in self._nodes_text(node.port).splitlines():
                _id, address, flags, *_rest = line.split()
                ranges = line.split()[8:]
                if "master" not in flags.split(",") or "fail" in flags.split(","):
                    continue
                for item in ranges:
                    first, _, last = item.partition("-")
                    if first.isdigit() and int(first) <= self.slot <= int(last or first):
                        return int(address.split("@")[0].rsplit(":", 1)[1])
        raise LookupError(f"no node owns slot {self.slot}")

    def url(self, *, avoid_owner: bool = True) -> str:
        """A URL naming one master that does NOT own the slot (the client must find the owner)."""
        owner = self.owner_port()
        named = next(n.port for n in self.nodes[:3] if n.port != owner) if avoid_owner else owner
        return f"redis+cluster://127.0.0.1:{named}"

    def wait_for_new_owner(self, old_port: int, timeout_s: float = 60) -> int:
        def switched() -> bool:
            try:
                port = self.owner_port()
            except LookupError:  # the old owner is marked failed, no replica promoted yet
                return False
            return port != old_port and info(port, "replication")["role"] == "master" and self._all_ok()

        wait_until(switched, "cluster fail-over", timeout_s)
        return self.owner_port()

    def server(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def sigkill(server: RedisServer) -> float:
    """Kill a redis-server the hard way; the monotonic time it died."""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait(10)
    return time.monotonic()
