"""The Lua scripts' declarations (jobs/script_defs.py, jobs/scripts.py): one per script, the only
place KEYS and ARGV are numbered, and the generated names run on a real redis-server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest
import redis.asyncio as redis_async

from jobs.script_defs import SCRIPTS, UPDATE, JobVerdict, UpdateArgs, UpdateKeys
from jobs.script_defs_infra import (
    RENEW,
    TOKEN_ACQUIRE,
    AcquireVerdict,
    RenewArgs,
    StreamKeys,
    TokenAcquireArgs,
    TokenAcquireKeys,
)
from jobs.scripts import Script, Verdict
from tests.procs import ROOT, RedisServer

LUA = ROOT / "jobs" / "lua"
SHARED = {"prelude", "webhook_capture"}  # put before every script, not scripts of their own
BY_NAME = {script.name: script for script in SCRIPTS}


def _body(name: str) -> str:
    return (LUA / f"{name}.lua").read_text()


def test_every_script_is_declared_once_and_every_declaration_has_its_script() -> None:
    files = {path.stem for path in LUA.glob("*.lua")} - SHARED
    names = [script.name for script in SCRIPTS]
    assert len(names) == len(set(names)), "a script declared twice"
    assert set(names) == files


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_no_script_numbers_its_keys_or_arguments(name: str) -> None:
    body = _body(name)
    assert "KEYS[" not in body
    assert "ARGV[" not in body
    assert not re.search(r"^--\s*(KEYS|ARGV):", body, re.M), "the declaration is the one place for these"


def test_the_shared_parts_leave_the_names_k_and_a_to_the_declaration() -> None:
    for name in (*SHARED, *BY_NAME):
        assert not re.search(r"\blocal\s+(K|A)\b", _body(name)), name


def _generated(
    script: Script[NamedTuple, NamedTuple], table: str, source: str
) -> tuple[list[str], str | None]:
    """The names the prologue binds to source[1..n] in order, and the tail's name (if any)."""
    prologue = script.prologue()
    fixed = re.findall(rf"(\w+) = {source}\[(\d+)\]", prologue)
    assert [int(i) for _, i in fixed] == list(range(1, len(fixed) + 1))
    tail = re.search(
        rf"for i = (\d+), #{source} do {table}\.(\w+)\[i - (\d+)\] = {source}\[i\] end", prologue
    )
    if tail:
        assert int(tail[1]) == len(fixed) + 1
        assert int(tail[3]) == len(fixed)
    return [name for name, _ in fixed], tail[2] if tail else None


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_the_generated_names_follow_the_declared_order(name: str) -> None:
    script = BY_NAME[name]
    for fields, table, source in ((script.keys, "K", "KEYS"), (script.args, "A", "ARGV")):
        declared: tuple[str, ...] = fields._fields
        names, tail = _generated(script, table, source)
        assert [*names, *([tail] if tail else [])] == list(declared)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_word_a_script_returns_is_one_of_its_verdicts(name: str) -> None:
    script = BY_NAME[name]
    words = set(re.findall(r"return \{?'(\w+)'", _body(name)))
    if script.verdict is None:
        assert not words - {"ok"}, f"{name} returns verdicts {words}: declare them"
        return
    assert words <= {member.value for member in script.verdict}


def test_a_lua_keyword_cannot_be_a_declared_name() -> None:
    class Keys(NamedTuple):
        end: str

    with pytest.raises(ValueError, match="Lua keywords"):
        Script("x", Keys, Keys)


def test_an_unknown_verdict_is_an_error_not_a_string() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        JobVerdict.of(b"nope")
    assert JobVerdict.of([b"fenced", 1]) is JobVerdict.FENCED
    assert issubclass(JobVerdict, Verdict)


def test_a_tail_is_spread_after_the_fixed_fields_on_the_wire() -> None:
    keys, args = UPDATE.wire(UpdateKeys("j", "e"), UpdateArgs("id", "1:ab", 10, "running", ["phase", "x"]))
    assert keys == ["j", "e"]
    assert args == ["id", "1:ab", 10, "running", "phase", "x"]


@pytest.mark.anyio
async def test_declared_scripts_run_on_a_real_redis_by_name(redis_server: RedisServer) -> None:
    redis = redis_async.Redis.from_url(redis_server.url)
    try:
        update = UPDATE.load(redis)
        await redis.hset("{t}:job:1", mapping={"status": "running", "fence": "1:ab"})
        keys = UpdateKeys(job="{t}:job:1", events="{t}:events")
        args = UpdateArgs("1", "1:ab", 100, "running", fields=["phase", "calling", "progress", "0.5"])
        assert JobVerdict.of(await update(keys, args)) is JobVerdict.OK
        assert JobVerdict.of(await update(keys, args._replace(fence="2:cd"))) is JobVerdict.FENCED
        job = await redis.hgetall("{t}:job:1")
        assert job[b"phase"] == b"calling"
        assert job[b"progress"] == b"0.5"
        assert job[b"version"] == b"1"  # the fenced write wrote nothing
        gone = UpdateKeys(job="{t}:job:2", events="{t}:events")
        assert JobVerdict.of(await update(gone, args)) is JobVerdict.MISSING

        # Two tails at once: per-token keys and per-token arguments, paired by position.
        acquire = TOKEN_ACQUIRE.load(redis)
        reply = await acquire(
            TokenAcquireKeys(
                space="{t}:space", tokens=["{t}:tok:a", "{t}:lease:a", "{t}:tok:b", "{t}:lease:b"]
            ),
            TokenAcquireArgs(
                now_ms=1000, lease_ms=500, call_id="c1", max_in_flight=1, tokens=["a", "1", "b", "0"]
            ),
        )
        assert AcquireVerdict.of(reply) is AcquireVerdict.OK
        assert reply[1] == b"b"  # 'a' is excluded
        assert await redis.zrange("{t}:lease:b", 0, -1) == [b"c1"]

        # An empty tail is an empty array, not a missing one.
        await redis.xgroup_create("{t}:stream", "g", id="0", mkstream=True)
        assert await RENEW.load(redis)(StreamKeys("{t}:stream"), RenewArgs(group="g", consumer="c")) == []
    finally:
        await redis.aclose()


def test_the_loader_reads_the_scripts_from_the_package() -> None:
    assert Path(LUA).is_dir()
    assert "local K = {" in UPDATE.source()
