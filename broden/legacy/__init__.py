"""The original Broden release layout (``broden1_224/``): convert it to a dataset, and export a dataset back to it.

``convert_legacy`` lives in :mod:`broden.legacy.read`, ``export_legacy`` in :mod:`broden.legacy.write`; this module
is the public entry point for both.
"""

from broden.legacy.read import convert_legacy, read_index, read_label_table
from broden.legacy.write import export_legacy, write_label_files

__all__ = ["convert_legacy", "export_legacy", "read_index", "read_label_table", "write_label_files"]
