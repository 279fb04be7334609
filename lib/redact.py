"""Credentials out of everything we store or print: ``redact(text)`` masks the secrets an error
message can carry (a server echoing our request, an SDK quoting its config).

Masked: ``Authorization`` header values and bearer tokens; ``api_key`` / ``api-key`` / ``x-api-key``
/ ``apikey`` values, secret keys, session and access tokens, passwords (``name=value``,
``name: value`` or JSON ``"name": "value"``); AWS access key ids (AKIA/ASIA...); ``sk-...`` keys
(OpenAI, Anthropic), ``hf_...`` tokens; the password in ``scheme://user:password@host``.
Idempotent: redacting twice gives the same text.
"""

from __future__ import annotations

import re

MASK = "[REDACTED]"

_NAMES = (r"authorization|proxy-authorization|(?:x[-_])?api[-_]?key|(?:aws[-_])?secret[-_]?access[-_]?key"
          r"|secretaccesskey|(?:aws[-_])?session[-_]?token|x-amz-security-token|client[-_]?secret"
          r"|(?:access|refresh|id|auth)[-_]?token|password|passwd")

_RULES: list[tuple[re.Pattern[str], str]] = [
    # "Authorization: Bearer abc", "api_key=abc", '"x-api-key": "abc"', "'api-key': 'abc'"; the value may
    # carry a scheme (Bearer, Basic, Token) before the secret itself
    (re.compile(rf"(?i)(?<![A-Za-z0-9])((?:{_NAMES})\\?[\"']?\s*[:=]\s*\\?[\"']?)"
                r"(?!\[REDACTED\])(?:(?:bearer|basic|token|digest)\s+)?[^\s\\\"',;&}\])]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*"), f"Bearer {MASK}"),
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"), MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), MASK),
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^/\s@]+@"), rf"\1{MASK}@"),
]


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every credential masked; each of ``secrets`` (a value we sent, e.g. an API key)
    is masked wherever it appears verbatim, whatever its shape."""
    if not text:
        return text
    text = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text
