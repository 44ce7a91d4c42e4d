"""The HF-token part of `ghibli doctor`: the tokens a consumer here would use, checked by format.

Tokens are read exactly as the consumer reads them (consumers.tokens) and shown by alias and
source only, never a character of the token itself.
"""

from __future__ import annotations

import os

from ghibli.findings import Finding, fail, ok, warn
from jobs.settings import Settings

__all__ = ["check_tokens"]


def check_tokens(settings: Settings) -> tuple[list[Finding], str | None]:
    """Findings about the configured tokens, and one usable token for the Space check."""
    from consumers.token_transport import check_token_transport
    from consumers.tokens import TokenConfigError, load_tokens

    try:
        tokens = load_tokens(os.environ, settings.hf_tokens_file)
        check_token_transport(settings.space, tokens, settings.space_plaintext_hosts)
    except TokenConfigError as exc:
        return [
            fail(
                "tokens",
                str(exc),
                "Fix what the message names: the tokens (each is hf_ followed by letters and digits, one "
                "per line in HUGGING_FACE_TOKENS_FILE) or how they would reach the Space.",
            )
        ], None
    found: list[Finding] = []
    if tokens.anonymous:
        if settings.space.startswith(("http://", "https://")):
            found.append(ok("tokens", f"no HF token; calls to {settings.space} go without one"))
        else:
            found.append(
                warn(
                    "tokens",
                    "no HF token: the Space is called anonymously, on this machine's small ZeroGPU quota.",
                    "Put Hugging Face tokens in HUGGING_FACE_TOKENS_FILE (one per line); consumers rotate "
                    "them and wait when all are cooling down.",
                )
            )
    else:
        listed = ", ".join(f"{t.alias} ({t.source})" for t in tokens.usable)
        found.append(ok("tokens", f"{len(tokens.usable)} usable token(s): {listed}"))
    for token in tokens.rejected:
        found.append(
            warn(
                "tokens",
                f"{token.source} ({token.alias}) {token.problem}; consumers skip it.",
                "Fix or remove it.",
            )
        )
    first = tokens.usable[0].secret if tokens.usable else None
    return found, first
