"""HF tokens go to a Space only over TLS, or to loopback, or to a host the operator named: a real
`ghibli consume` with tokens and a plain-http Space elsewhere refuses to start and says which
setting allows it; the check itself for each kind of address."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.token_transport import check_token_transport
from consumers.tokens import TokenConfigError, load_tokens
from tests.procs import base_env, ghibli

TOKEN = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
TOKENS = load_tokens({"HF_TOKEN": TOKEN})
NONE = load_tokens({})


@pytest.mark.parametrize(
    ("space", "allowed", "ok"),
    [
        ("jamesliu1217/EasyControl_Ghibli", "", True),  # a Space id: https to hf.space
        ("https://spaces.example.com/ghibli/", "", True),
        ("http://127.0.0.1:7861/", "", True),
        ("http://[::1]:7861/", "", True),
        ("http://localhost:7861/", "", True),
        ("http://203.0.113.9:7861/", "", False),
        ("http://space:7861/", "", False),  # the compose example, unless named
        ("http://space:7861/", "space", True),
        ("http://10.1.2.3:7861/", "10.0.0.0/8", True),
        ("http://10.1.2.3:7861/", "192.168.0.0/16", False),
        ("HTTP://203.0.113.9/", "", False),
    ],
)
def test_tokens_go_in_clear_text_only_where_allowed(space: str, allowed: str, ok: bool) -> None:
    if ok:
        check_token_transport(space, TOKENS, allowed)
    else:
        with pytest.raises(TokenConfigError) as refused:
            check_token_transport(space, TOKENS, allowed)
        assert "GHIBLI_SPACE_PLAINTEXT_HOSTS" in str(refused.value)
        assert TOKEN not in str(refused.value)
    check_token_transport(space, NONE, allowed)  # anonymous calls carry nothing to leak


@pytest.mark.system
def test_a_consumer_with_tokens_refuses_to_start_against_a_plain_http_space(tmp_path: Path) -> None:
    env = base_env(
        REDIS_URL="redis://127.0.0.1:9/0",  # never reached: the check comes first
        GHIBLI_SPACE="http://203.0.113.9:7861/",
        HF_TOKEN=TOKEN,
    )
    proc = ghibli(["consume"], env, tmp_path / "consumer.log").start()
    assert proc.wait(60) == 2
    log = proc.log()
    assert "GHIBLI_SPACE_PLAINTEXT_HOSTS" in log
    assert TOKEN not in log
