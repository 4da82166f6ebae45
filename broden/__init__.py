"""broden: Broden as a Hugging Face dataset, and the data side of Network Dissection."""

__version__ = "0.1.0"

from broden.dataset import Broden, Sample, load  # noqa: E402
from broden.errors import BrodenError  # noqa: E402
from broden.labels import LabelTable  # noqa: E402

__all__ = ["Broden", "BrodenError", "LabelTable", "Sample", "load", "__version__"]
