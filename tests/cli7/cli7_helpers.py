"""Helpers for the CLI tests."""
from __future__ import annotations


def cli(*argv) -> int:
    """Run ``lensprobe ARGV`` in-process; returns the exit code."""
    from lensprobe.cli import main

    return main([str(a) for a in argv])
