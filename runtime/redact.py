"""Credentials out of whatever hicmd shows, logs or records. Pure Python (no OpenCV, no torch): the CLI passes every
error line through it, on any install.

Camera URLs carry passwords (rtsp://admin:pw@cam/main), and a user may paste one where a path was expected; nothing
hicmd prints, writes or sends may contain them.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:?//?")  # rtsp://, and its typos rtsp:/ and rtsp// (echoed in errors)
# password-like parameters: ?password=..., &token=..., rtspsrc's user-pw=... (up to the next delimiter)
_SECRET_PARAM = re.compile(r"(?i)(\b(?:password|passwd|pwd|pass|user-pw|user-id|token|access_token|api_?key|key|secret|"
                           r"auth|signature|sig)=)[^&;\s!#]*")


def redact(text: str) -> str:
    """`text` (a source, a message) as it is safe to show, log or record: credentials become ***."""
    return _SECRET_PARAM.sub(r"\1***", re.sub(r"\S+", lambda m: _hide_userinfo(m.group()), str(text)))


def _hide_userinfo(token: str) -> str:
    """One word of a source or message with the user:password@ of a URL as ***@: everything up to the last '@', as
    FFmpeg reads it (a password may hold an unescaped '@' or '/'), also behind a GStreamer `location=`, a mistyped
    scheme or none (admin:pw@host). A file name with an '@' but no scheme and no ':' before it is left alone."""
    key, eq, value = token.partition("=")
    if not (eq and key.replace("-", "").replace("_", "").isalnum()):  # location=rtsp://... in a pipeline
        key, eq, value = "", "", token
    at = value.rfind("@")
    if at < 0:
        return token
    lead = len(value) - len(value.lstrip("'\"([<"))  # a URL quoted in a message
    scheme = _SCHEME.match(value, lead)
    if scheme is None and ":" not in value[lead:at]:
        return token
    start = scheme.end() if scheme else lead
    return f"{key}{eq}{value[:start]}***{value[at:]}"
