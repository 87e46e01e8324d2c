"""Issue 14, finding 1: every way a config file can fail to be read is one line on stderr and exit 2.

Encoding, a directory, an unreadable file, TOML of the wrong shape — for the agent, central and
the technician's `remote` commands, as real processes. An empty file is not a failure: it is
what the README tells the operator to create (`touch /etc/schulwart/agent.toml`), and every key
has a default.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agent.procs import AGENT, CENTRAL, run


def _one_line(argv: list[str]) -> str:
    out = run(argv, check=False)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, (argv, out.returncode, out.stderr)
    assert len(lines) == 1 and "Traceback" not in out.stderr and out.stdout == "", (argv, out.stderr)
    return lines[0]


def _commands(config: Path, tmp: Path) -> list[list[str]]:
    return [
        [AGENT, "status", "--config", str(config), "--data-dir", str(tmp / "a")],
        [AGENT, "run", "--config", str(config), "--data-dir", str(tmp / "a")],
        [CENTRAL, "school", "list", "--config", str(config), "--data-dir", str(tmp / "c")],
        [CENTRAL, "serve", "--config", str(config), "--data-dir", str(tmp / "c"), "--port", "0"],
        [AGENT, "remote", "status", "--config", str(config)],
    ]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("latin1.toml", "[agent]\nlog_level = 'Größe'\n".encode("latin-1"), ("is not UTF-8",)),
        # one file for three programs: each refuses what it knows to be of the wrong shape, or what it does not know
        ("shape.toml", b"agent = 5\nremote = 5\ncentral = 5\n", ("must be a table", "unknown section")),
        ("array.toml", b"[[agent]]\n[[remote]]\n[[central]]\n", ("must be a table", "unknown section")),
    ],
)
def test_unreadable_content_is_one_line(tmp_path: Path, name: str, content: bytes, expected: tuple[str, ...]) -> None:
    config = tmp_path / name
    config.write_bytes(content)
    for argv in _commands(config, tmp_path):
        line = _one_line(argv)
        assert name in line and any(e in line for e in expected), line
    assert not (tmp_path / "c").exists() and not (tmp_path / "a").exists()


def test_a_directory_and_an_unreadable_file_are_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "conf.d"
    folder.mkdir()
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)  # unreadable even for root: the kernel refuses to follow it
    for config in (folder, loop):
        for argv in _commands(config, tmp_path):
            line = _one_line(argv)
            assert config.name in line, line
    if os.geteuid() != 0:
        locked = tmp_path / "locked.toml"
        locked.write_text("[agent]\n")
        locked.chmod(0)
        for argv in _commands(locked, tmp_path):
            assert "Permission denied" in _one_line(argv)


def test_remote_section_of_the_wrong_shape_and_a_binary_token_file(tmp_path: Path) -> None:
    """The laptop's [remote] section is checked like every other section; a token file must be text."""
    config = tmp_path / "laptop.toml"
    config.write_text('[remote]\nurl = "http://127.0.0.1:9"\ntoken_file = 5\n')
    assert "[remote] token_file must be a string (got 5)" in _one_line([AGENT, "remote", "status", "--config",
                                                                        str(config)])  # fmt: skip
    config.write_text('[remote]\nurl = "http://127.0.0.1:9"\ntokenfile = "t"\n')
    assert "unknown key(s) in [remote]: tokenfile" in _one_line([AGENT, "remote", "devices", "--config", str(config)])
    token = tmp_path / "token"
    token.write_bytes(b"\xff\xfe\x00garbage")
    line = _one_line([AGENT, "remote", "status", "--url", "http://127.0.0.1:9", "--token-file", str(token)])
    assert "does not hold a token" in line


def test_an_empty_config_file_means_the_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_bytes(b"")
    added = run([CENTRAL, "school", "add", "--id", "gs", "--name", "GS", "--carrier", "K", "--config", str(empty),
                 "--data-dir", str(tmp_path / "c")], check=False)  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = run([CENTRAL, "school", "list", "--config", str(empty), "--data-dir", str(tmp_path / "c")])
    assert "gs" in listed.stdout
