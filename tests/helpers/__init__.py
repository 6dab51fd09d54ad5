"""Helpers shared by several test modules (fixtures are imported by the modules that use them)."""
