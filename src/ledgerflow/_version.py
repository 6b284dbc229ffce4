"""The library's version: read by the package root, the CLI's ``--version`` and the build."""

__version__ = "0.1.0"
