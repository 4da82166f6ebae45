"""benchmark: Network Dissection of any model's units on a Broden dataset."""

from broden.version import __version__

__all__ = ["__version__"]
