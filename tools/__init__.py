"""Maintainer scripts that are not part of the installed distribution (run from a checkout: python -m tools.NAME)."""
