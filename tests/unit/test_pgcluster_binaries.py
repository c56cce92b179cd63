"""Finding the PostgreSQL server programs, and saying what to install when they are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.pgcluster import PostgresNotFoundError, binaries


def fake_bindir(root: Path, name: str) -> Path:
    bindir = root / name / "bin"
    bindir.mkdir(parents=True)
    for program in binaries.SERVER_PROGRAMS:
        path = bindir / program
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return bindir


def test_missing_server_programs_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client_only = tmp_path / "15" / "bin"  # what Debian's libpq-dev pg_config points at
    client_only.mkdir(parents=True)
    monkeypatch.setattr(binaries, "candidate_dirs", lambda: [client_only])

    with pytest.raises(PostgresNotFoundError) as raised:
        binaries.find_bindir()

    message = str(raised.value)
    assert "apt-get install postgresql" in message
    assert "brew install postgresql" in message
    assert str(client_only) in message


def test_first_directory_with_all_server_programs_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    incomplete = tmp_path / "incomplete" / "bin"
    incomplete.mkdir(parents=True)
    (incomplete / "pg_ctl").write_text("")
    first, second = fake_bindir(tmp_path, "a"), fake_bindir(tmp_path, "b")
    monkeypatch.setattr(binaries, "candidate_dirs", lambda: [incomplete, first, second])

    assert binaries.find_bindir() == first


def test_install_directories_are_tried_newest_version_first() -> None:
    dirs = [Path(f"/usr/lib/postgresql/{v}/bin") for v in ("9.6", "16", "13", "10")]

    ordered = sorted(dirs, key=binaries.version_key, reverse=True)

    assert [d.parts[-2] for d in ordered] == ["16", "13", "10", "9.6"]
