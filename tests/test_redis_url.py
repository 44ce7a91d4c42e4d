"""REDIS_URL's forms (jobs/redis_url.py) and the password files that fill them in (jobs/settings.py):
what each URL names, the start-up errors for the ones it cannot be, and passwords never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.redis_url import RedisTarget, parse_redis_url, redacted_url
from jobs.settings import SettingsError, load_settings


def test_the_three_topologies() -> None:
    assert parse_redis_url("redis://:pw@host:6379/2") == RedisTarget("standalone", "redis://:pw@host:6379/2")
    sentinel = parse_redis_url("redis+sentinel://user:p%40ss@s1,s2:26380,[::1]:26381/mymaster/3")
    assert sentinel.topology == "sentinel"
    assert sentinel.nodes == (("s1", 26379), ("s2", 26380), ("::1", 26381))
    assert (sentinel.service, sentinel.db, sentinel.username, sentinel.password) == (
        "mymaster",
        3,
        "user",
        "p@ss",
    )
    assert parse_redis_url("redis+sentinel://s1/mymaster").db == 0
    with_secret = parse_redis_url("redis+sentinel://s1/m?sentinel_password=a%2Bb%26c&sentinel_username=admin")
    assert (with_secret.sentinel_username, with_secret.sentinel_password) == ("admin", "a+b&c")
    cluster = parse_redis_url("redis+cluster://:pw@n1:7000,n2")
    assert (cluster.topology, cluster.nodes, cluster.password) == (
        "cluster",
        (("n1", 7000), ("n2", 6379)),
        "pw",
    )
    assert parse_redis_url("redis+cluster://n1:7000/0").db == 0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://host", "must be redis://"),
        ("redis+sentinel://s1:26379", "names the primary's service"),
        ("redis+sentinel://s1/m/0/extra", "names the primary's service"),
        ("redis+sentinel://s1/m/zero", "is not a number"),
        ("redis+sentinel://s1:70000/m", "port out of range"),
        ("redis+sentinel://s1/m?password=x", "unknown option password"),
        ("redis+cluster://n1/1", "only database 0"),
        ("redis+cluster://n1?sentinel_password=x", "unknown option"),
        ("redis+cluster://n1:port", "is not host or host:port"),
    ],
)
def test_urls_it_cannot_be_are_start_up_errors_naming_the_setting(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_redis_url(url)
    with pytest.raises(SettingsError, match="REDIS_URL"):
        load_settings(environ={"REDIS_URL": url})


def test_passwords_are_never_shown() -> None:
    url = "redis+sentinel://user:data-pw-7731@s1,s2/m/0?sentinel_password=sentinel-pw-9913"
    shown = redacted_url(url)
    assert shown == "redis+sentinel://user:***@s1,s2/m/0?sentinel_password=***"
    settings = load_settings(environ={"REDIS_URL": url})
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"REDIS_URL": url + "&bogus=1"})
    for text in (repr(settings), str(settings.redacted()), str(caught.value)):
        assert "pw-7731" not in text
        assert "pw-9913" not in text


def test_password_files_fill_in_sentinel_and_cluster_urls(tmp_path: Path) -> None:
    data = tmp_path / "redis_password"
    data.write_text("data+pass word\n")
    sentinels = tmp_path / "sentinel_password"
    sentinels.write_text("s&ntinel=1\n")
    settings = load_settings(
        environ={
            "REDIS_URL": "redis+sentinel://olduser:old@s1:26379,s2:26379/ghibli/0",
            "REDIS_PASSWORD_FILE": str(data),
            "REDIS_SENTINEL_PASSWORD_FILE": str(sentinels),
        }
    )
    target = parse_redis_url(settings.redis_url)
    assert (target.username, target.password, target.sentinel_password) == (
        "olduser",
        "data+pass word",
        "s&ntinel=1",
    )
    assert target.nodes == (("s1", 26379), ("s2", 26379))
    # A child process gets the filled-in URL and the files again: filling in twice changes nothing.
    again = load_settings(environ=settings.to_env())
    assert again.redis_url == settings.redis_url
    cluster = load_settings(
        environ={"REDIS_URL": "redis+cluster://n1:7000,n2:7001", "REDIS_PASSWORD_FILE": str(data)}
    )
    assert parse_redis_url(cluster.redis_url).password == "data+pass word"
    with pytest.raises(SettingsError, match="REDIS_SENTINEL_PASSWORD_FILE"):
        load_settings(
            environ={"REDIS_URL": "redis://h:6379/0", "REDIS_SENTINEL_PASSWORD_FILE": str(sentinels)}
        )
    with pytest.raises(SettingsError, match="REDIS_PASSWORD_FILE"):
        load_settings(environ={"REDIS_URL": "unix:///run/redis.sock", "REDIS_PASSWORD_FILE": str(data)})
