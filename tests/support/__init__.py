"""Helpers shared by test modules (import as ``support.*``: conftest puts tests/ on sys.path)."""
