"""The Redis key schema: every key the pipeline touches, in one place.

All keys share one prefix that is a hash tag (default ``{ghibli}:``), so they land in one slot and
multi-key scripts also run on Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "{ghibli}:"
    stream_name: str = "jobs"
    group: str = "workers"

    @property
    def stream(self) -> str:
        """The jobs stream the consumer group reads."""
        return f"{self.prefix}{self.stream_name}"

    @property
    def events(self) -> str:
        """Stream of status changes (job id + version), tailed by ingest for SSE fan-out."""
        return f"{self.prefix}events"

    @property
    def delayed(self) -> str:
        """ZSET of job ids waiting for a retry, scored by the ms time they are due."""
        return f"{self.prefix}delayed"

    @property
    def entries(self) -> str:
        """Hash of claimed stream entry id -> job id: ends the job if its entry is deleted under the PEL."""
        return f"{self.prefix}entries"

    @property
    def dead(self) -> str:
        """Dead-letter stream: jobs that failed for good, with their last error."""
        return f"{self.prefix}dead"

    @property
    def durable(self) -> str:
        """Counter written just before a WAIT that must cover earlier writes (jobs/durable.py)."""
        return f"{self.prefix}durable"

    @property
    def consumers(self) -> str:
        """ZSET of consumer names scored by when their liveness key expires (ms, Redis's clock)."""
        return f"{self.prefix}consumers"

    @property
    def tokens(self) -> str:
        """ZSET of HF token aliases known to the pool."""
        return f"{self.prefix}tokens"

    def token(self, alias: str) -> str:
        """Hash of one token's shared state (never the token itself)."""
        return f"{self.prefix}token:{alias}"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def blob(self, name: str) -> str:
        return f"{self.prefix}blob:{name}"

    def alive(self, consumer: str) -> str:
        """Liveness key of a consumer: its heartbeat, refreshed every second or so while it runs."""
        return f"{self.prefix}alive:{consumer}"

    def idempotency(self, key_digest: str) -> str:
        return f"{self.prefix}idem:{key_digest}"

    def result_cache(self, digest: str) -> str:
        return f"{self.prefix}cache:{digest}"

    def in_flight(self, digest: str) -> str:
        """The unfinished job (the leader) that will produce the result-cache entry `digest`."""
        return f"{self.prefix}inflight:{digest}"

    def followers(self, job_id: str) -> str:
        """SET of the jobs merged into this leader's Space call (jobs/lua/prelude.lua)."""
        return f"{self.prefix}followers:{job_id}"

    def rate_limit(self, bucket: str) -> str:
        """Token bucket of one client (a hash of its address or key id), shared by all ingest processes."""
        return f"{self.prefix}rl:{bucket}"
