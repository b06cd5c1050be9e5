"""Credentials out of text that leaves the process: health details, logs, error messages."""

from __future__ import annotations

import re

# the user-information part of a URL: scheme://user:password@host, up to the authority's last
# "@" (a raw "@" in a password is not valid, yet clients accept it)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/]+@")


def without_credentials(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)
