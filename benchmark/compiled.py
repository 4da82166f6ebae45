"""Whether and when a process uses the compiled CPU loops of :mod:`benchmark.kernels` (numba): the one place that
loads them, and the run size from which they pay for their loading.

The loops are pass 1's keeping of each unit's threshold candidates and top images (:meth:`TopQuantile.add
<benchmark.quantile.TopQuantile.add>`, :meth:`TopImages.add <benchmark.topk.TopImages.add>`), the tally's counting
of active pixels (:class:`benchmark.upsample.ActiveKeys`; a float16 batch's whole per-pair counting in
:meth:`benchmark.tally.BatchCounter.count`) and adding of counts
(:meth:`benchmark.tally.Tally.add_counts`), the filling of a batch's label maps from the masks' RLE bytes and the
grouping of their pixels by label tuple (:class:`benchmark.activations.RowBatches`,
:meth:`benchmark.activations.PixelLabels.of`); each has a version without them (tensor operations, pycocotools)
that gives the same counts and maps.
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType

import numpy as np
import torch

#: (image, unit) maps from which a run uses the compiled loops (pass 1's, and counting, decoding, grouping and adding):
#: loading them costs 0.45-0.64 CPU s once per process (numba, LLVM, the cached machine code; about 3 s the first
#: time, compiling) and about 120 MB of mostly shared libraries, which the scorer loads while the dataset is
#: checked; counting saves about 0.9 CPU us per map. MobileNetV2 ``features.18`` (1,280 units) on this 2-core
#: machine, with the counting alone: 240 images 2.87 s with tensor operations against 3.17 s compiled; 2,000 images
#: 19.2 s against 18.3 s (medians of alternating runs).
COMPILED_MIN_MAPS = 2**19


@functools.cache
def kernels() -> ModuleType | None:
    """:mod:`benchmark.kernels`, imported (so compiled, or loaded from numba's cache) once per process; None, with a
    warning, where numba cannot load it: the tally then counts with tensor operations and the masks are decoded
    by pycocotools (the same counts and maps, slower)."""
    try:
        from numba import config

        if config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 would run the loops as Python, pixel by pixel
            return None
        import benchmark.kernels as loops
    except Exception as exc:  # numba missing, or unable to compile here
        warnings.warn(f"the compiled loops could not load ({type(exc).__name__}: {exc}); counting with tensor "
                      "operations and decoding masks with pycocotools instead (same results, slower); reinstall "
                      "numba to fix", stacklevel=2)
        return None
    return loops


def float16_maps(enabled: bool, acts: torch.Tensor) -> tuple[ModuleType, np.ndarray] | None:
    """The loops and the bits of ``acts`` as ``(B, U, h * w)`` uint16 (a view), where the loops that read float16
    maps as they are (pass 1's thresholds and top images, pass 2's counting) read them: ``enabled``, ``acts``
    contiguous, non-empty ``(B, U, h, w)`` float16 maps on the CPU, and the loops loaded; else None (the tensor
    operations)."""
    if not (enabled and acts.dim() == 4 and acts.dtype == torch.float16 and acts.device.type == "cpu"
            and acts.is_contiguous() and acts.numel() > 0):
        return None
    loops = kernels()
    return None if loops is None else (loops, acts.numpy().view(np.uint16).reshape(*acts.shape[:2], -1))
