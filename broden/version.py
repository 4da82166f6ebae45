"""The distribution's version, in one place (read by every command's --version and recorded in every output)."""

__version__ = "0.1.0"
