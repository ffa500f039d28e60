"""Shared test world: fixtures and keyword-only factories used by every app's tests."""
