"""protocol/ does no I/O: no asyncio, aiohttp, sqlite or socket, not even indirectly."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import protocol

FORBIDDEN = {"asyncio", "aiohttp", "sqlite3", "sqlite_utils", "socket", "zeroconf", "psutil", "requests", "http"}
ROOT = Path(protocol.__file__).parent


def test_no_forbidden_import_in_source() -> None:
    for path in ROOT.glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{path.name} opens a file"


def test_importing_protocol_pulls_in_no_io_module() -> None:
    code = (
        "import sys, protocol; print(sorted(m for m in sys.modules"
        f" if m.split('.')[0] in {FORBIDDEN!r} or m == 'urllib.request'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_surface_is_exported() -> None:
    for name in protocol.__all__:
        assert hasattr(protocol, name), name
    assert len(set(protocol.__all__)) == len(protocol.__all__)
