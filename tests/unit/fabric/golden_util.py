"""Golden files for the fabric tests: exact text; ``VPCNET_UPDATE_GOLDENS=1`` rewrites them."""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("VPCNET_UPDATE_GOLDENS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"missing golden {path}; regenerate with VPCNET_UPDATE_GOLDENS=1"
    expected = path.read_text()
    if expected != text:
        diff = "\n".join(difflib.unified_diff(expected.splitlines(), text.splitlines(),
                                              f"golden/{name}", "rendered", lineterm=""))
        pytest.fail(f"golden {name} differs (VPCNET_UPDATE_GOLDENS=1 to accept):\n{diff}")
