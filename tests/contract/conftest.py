"""Fixtures of the contract tests: ``api`` is a real control plane on a temp data dir."""

from tests.control_plane.conftest import api

__all__ = ["api"]
