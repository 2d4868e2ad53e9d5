"""The package version, in a module of its own so any layer can read it without importing
the package root (``camprotool/__init__.py`` imports every layer)."""

__version__ = "0.1.0"
