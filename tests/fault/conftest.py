"""Fault-suite figures are printed in the terminal summary, so CI output shows them with or without `-s`."""

from __future__ import annotations

FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for line in FIGURES:
        terminalreporter.write_line(f"fault suite: {line}")
