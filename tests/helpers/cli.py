"""Running the command line in-process and reading its one-line errors."""

from __future__ import annotations

from paramviz.cli import main


def run_cli(capsys, *argv) -> tuple[int, str]:
    """``(exit status, stderr)`` of ``paramviz ARGV``; stderr is at most one line."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) <= 1, err
    return code, err


def one_line(err: str) -> str:
    """``err`` when it is exactly one ``paramviz: error: ...`` line."""
    assert len(err.splitlines()) == 1 and err.startswith("paramviz: error: "), err
    return err
