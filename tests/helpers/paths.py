"""Paths the tests read: the repository root and the vendored reference results (never anything outside the repo)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: the authors' released results (CSAILVision/NetDissect, MIT), vendored: see reference/netdissect-cvpr2017/README.md
REFERENCE = REPO / "reference" / "netdissect-cvpr2017"
