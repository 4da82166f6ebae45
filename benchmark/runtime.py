"""Process set-up of a score run: a memory allocator that keeps its large blocks, and one CPU thread budget.

**Allocator.** glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB to 32 MiB, adapting) with fresh
``mmap`` calls and returns them with ``munmap`` when freed, and trims the heap top above 128 KiB. A forward pass
allocates and frees tens of megabytes per layer and batch, so every batch faults its memory in again page by page:
on a 2-core machine four MobileNetV2 batches of 32 spent 3.3 s in the kernel (2.2 million minor page faults)
against 1.6 s of user time. :func:`tune_allocator` raises both thresholds once at start-up (``mallopt`` through
ctypes), so freed blocks are reused: 0.15 s of system time, 98 thousand faults. Peak memory is unchanged (the
blocks are the same; they are kept instead of returned). Arrow's allocations (the rows read from the dataset,
the id lookups) then go through the same ``malloc`` instead of Arrow's own mimalloc pool, so the two allocators
do not each hold freed memory the other could reuse: at full Broden scale that kept 13 MB off the peak. Off glibc
it does nothing.

**Threads.** Torch's intra-op threads and the DataLoader's worker processes share the CPUs the process may use
(``os.sched_getaffinity``). Left to their defaults (a thread per core plus up to four workers) they oversubscribe
the machine, and torch's OpenMP threads spin while waiting for each other; on a loaded 2-core machine the same
tally then took 1.2 s to 13.9 s. :func:`plan_threads` splits the CPUs once per run (the tally on one intra-op
thread per tally thread), :meth:`ThreadBudget.applied` and :meth:`ThreadBudget.tallying` set torch's threads, and
the split is recorded in the results (``environment``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from broden.errors import BrodenError
from broden.utils.parallel import default_workers

#: ``mallopt`` parameters (``<malloc.h>``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks below this come from the heap and are reused after ``free``. Older glibc releases refuse values above
#: 32 MiB on 64-bit systems (half their heap size); then that value is used.
MMAP_THRESHOLD = 1 << 30
MMAP_THRESHOLD_FALLBACK = 32 << 20
#: Free memory at the heap top is returned to the kernel only above this.
TRIM_THRESHOLD = 1 << 31

_tuned: bool | None = None


def tune_allocator() -> bool:
    """Make glibc's ``malloc`` keep large freed blocks for reuse (see the module docstring); True when it did.

    Idempotent per process; a no-op returning False where the C library is not glibc.
    """
    global _tuned
    if _tuned is None:
        _tuned = _mallopt_thresholds()
        if _tuned:
            import pyarrow as pa

            pa.set_memory_pool(pa.system_memory_pool())
    return _tuned


def _mallopt_thresholds() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):  # not glibc
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_FALLBACK):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside the block (restored after it). For building and writing the
    results: tens of thousands of small dicts and lists, without reference cycles, whose allocations trigger full
    collections that walk every object of the process (torch, the model, the dataset): 0.25 s of a 240-image
    MobileNetV2 run's 0.54 s of results. Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def worker_init(_worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: the allocator set-up in every worker process, whatever its start method."""
    tune_allocator()


@dataclass(frozen=True)
class ThreadBudget:
    """How a run uses the CPUs it may: ``threads`` torch intra-op threads plus ``workers`` DataLoader processes
    for the forward pass; in pass 2 without a forward pass, ``tally_workers`` processes that decode the masks (and
    on a CPU device count the batches), and ``tally_threads`` Python threads (each running torch on one intra-op
    thread) where the main process counts (:func:`plan_threads`)."""

    cpus: int  # CPUs this process may use (its affinity mask)
    threads: int
    workers: int
    tally_threads: int
    tally_workers: int

    @contextmanager
    def applied(self, spare: int = 0) -> Iterator[None]:
        """Torch's intra-op threads set to ``threads`` inside the block, restored after it (the workers are started
        by the run's loaders). ``spare``: that many fewer (at least one), for CPUs another process takes meanwhile:
        OpenMP threads that share a core wait for each other at every barrier (the set-up's one-image probe of
        MobileNetV2 beside the dataset check's child on 2 CPUs: 0.38-0.43 s on two threads, 0.04 s alone)."""
        before = torch.get_num_threads()
        torch.set_num_threads(max(1, self.threads - spare))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    @contextmanager
    def tallying(self) -> Iterator[None]:
        """Torch on one intra-op thread inside the block (the tally's threads are its own: ``Tally.add(...,
        threads=tally_threads)``), back to ``threads`` after it."""
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(self.threads)

    def record(self) -> dict[str, Any]:
        """The fields recorded in the results' ``environment``."""
        return {"cpus": self.cpus, "torch_threads": self.threads, "workers": self.workers,
                "tally_threads": self.tally_threads, "tally_workers": self.tally_workers}


def cpus_per_process() -> int:
    """The CPUs this process may use (its affinity mask), shared evenly with the other ranks that ``torchrun``
    started on this machine (``LOCAL_WORLD_SIZE``), so that N ranks on one machine do not each claim every CPU."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, default_workers() // local)


def plan_threads(threads: int | None, workers: int | None, device: str, cpus: int | None = None) -> ThreadBudget:
    """Split ``cpus`` (default: :func:`cpus_per_process`) between torch threads and DataLoader workers.

    What the user gives (``--threads``, ``--workers``) is kept; the rest fills the CPUs that are left, so that
    ``threads + workers <= cpus`` whenever the user did not ask for more. Defaults: on a CPU device the forward
    pass dominates and decoding is a few percent of it, so a quarter of the CPUs (at most 4) decode and the rest
    compute (2 CPUs: 2 threads, no workers); on an accelerator decoding is the bottleneck, so every CPU but one
    decodes (at most 8) and the main process keeps one thread.

    The tally runs on one torch intra-op thread: its operations are small (well under a millisecond), so intra-op
    threads mostly wait for each other at barriers, and on a loaded machine a descheduled thread stalls the rest
    (2000 x 512 tally on 2 CPUs under load: 1.1-1.7 s on one thread, 18-31 s on two). Its parallelism is coarse
    instead. On a CPU device, pass 2 from stored activations (the cache, or ``--activations``) counts each batch
    in the ``tally_workers`` DataLoader processes that decode its masks, and the main process only adds their
    counts, so they take every CPU (at most 16; none on one CPU, where the main process counts). Otherwise (a
    second forward pass, or the tally on an accelerator) the main process counts, with ``tally_threads`` Python
    threads each counting whole chunks of (image, unit) pairs (half the CPUs, at most 8; ``--threads`` given,
    that many), while ``tally_workers`` processes decode and group the next batches' masks (the other CPUs, at
    least one where there are two, at most 8). ``--workers`` given: that many tally workers.
    """
    cpus = cpus_per_process() if cpus is None else max(1, int(cpus))
    if threads is not None and threads < 1:
        raise BrodenError(f"--threads {threads}: must be at least 1")
    if workers is not None and workers < 0:
        raise BrodenError(f"--workers {workers}: give 0 (decode in this process) or more")
    on_cpu = device == "cpu" or device.startswith("cpu:")
    tally_threads = max(1, min(8, cpus // 2)) if threads is None else int(threads)
    if workers is not None:
        tally_workers = int(workers)
    elif on_cpu:
        tally_workers = min(16, cpus) if cpus > 1 else 0
    elif threads is None:
        tally_workers = min(8, max(1, cpus - tally_threads)) if cpus > 1 else 0
    else:
        tally_workers = min(8, max(0, cpus - tally_threads))
    if workers is None:
        if on_cpu:
            workers = min(4, cpus // 4)
        else:
            workers = min(8, cpus - 1)
        if threads is not None:
            workers = max(0, min(workers, cpus - threads))
    if threads is None:
        threads = max(1, cpus - workers)
    return ThreadBudget(cpus=cpus, threads=int(threads), workers=int(workers), tally_threads=tally_threads,
                        tally_workers=tally_workers)
