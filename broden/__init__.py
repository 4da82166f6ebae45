"""broden: Broden as a Hugging Face dataset, and the data side of Network Dissection."""

from broden.dataset import Broden, Example, load
from broden.errors import BrodenError
from broden.labels import LabelTable
from broden.version import __version__

__all__ = ["Broden", "BrodenError", "Example", "LabelTable", "load", "__version__"]
