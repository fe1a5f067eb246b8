"""Handles on the peer processes the a2a tests start."""

from __future__ import annotations

import subprocess


class SdkPeer:
    """An a2a-sdk agent running in a subprocess on 127.0.0.1."""

    def __init__(self, url: str, proc: subprocess.Popen[str]) -> None:
        self.url = url
        self.proc = proc
