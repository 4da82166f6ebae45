"""The score run's process set-up: the CPU thread budget and the allocator tuning (checked by its page faults)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark.runtime import ThreadBudget, cpus_per_process, plan_threads
from broden.errors import BrodenError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("threads", "workers", "device", "cpus", "expected"),
    [  # expected: threads, workers, tally threads, tally workers
        (None, None, "cpu", 2, (2, 0, 1, 2)),  # the forward pass gets every CPU; pass 2: every CPU counts
        (None, None, "cpu", 16, (12, 4, 8, 16)),  # a quarter decodes, at most 4 (pass 2: 16 counting workers)
        (None, None, "cpu", 32, (28, 4, 8, 16)),
        (2, None, "cpu", 4, (2, 1, 2, 4)),  # --threads given: the counting workers still take the CPUs
        (None, None, "cpu", 1, (1, 0, 1, 0)),
        (None, None, "cuda", 16, (8, 8, 8, 8)),  # decoding feeds the accelerator
        (None, None, "cuda:1", 1, (1, 0, 1, 0)),
        (None, 1, "cpu", 2, (1, 1, 1, 1)),  # --workers given: threads fill the rest
        (None, 4, "cpu", 2, (1, 4, 1, 4)),  # more workers than CPUs: as asked, one thread
        (1, None, "cuda", 4, (1, 3, 1, 3)),  # --threads given: workers within what is left
        (2, None, "cuda", 2, (2, 0, 2, 0)),
        (3, 5, "cpu", 2, (3, 5, 3, 5)),  # both given: as asked
    ],
)
def test_plan_splits_the_cpus(threads, workers, device, cpus, expected) -> None:
    budget = plan_threads(threads, workers, device, cpus=cpus)
    got = (budget.threads, budget.workers, budget.tally_threads, budget.tally_workers)
    assert got == expected and budget.cpus == cpus
    assert budget.record() == {"cpus": cpus, "torch_threads": expected[0], "workers": expected[1],
                               "tally_threads": expected[2], "tally_workers": expected[3]}


def test_plan_defaults_to_the_affinity_mask() -> None:
    import os

    assert plan_threads(None, None, "cpu").cpus == len(os.sched_getaffinity(0))


def test_ranks_on_one_machine_share_its_cpus(monkeypatch) -> None:
    import os

    mine = len(os.sched_getaffinity(0))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # as torchrun sets it for two ranks on this machine
    assert cpus_per_process() == max(1, mine // 2)
    assert plan_threads(None, 0, "cpu").threads == max(1, mine // 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(4 * mine))
    assert cpus_per_process() == 1


@pytest.mark.parametrize(("threads", "workers", "match"), [(0, None, "--threads 0"), (None, -1, "--workers -1")])
def test_plan_rejects_bad_counts(threads, workers, match) -> None:
    with pytest.raises(BrodenError, match=match):
        plan_threads(threads, workers, "cpu")


def test_applied_sets_and_restores_torch_threads() -> None:
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    budget = ThreadBudget(cpus=2, threads=other, workers=0, tally_threads=3, tally_workers=1)
    with budget.applied():
        assert torch.get_num_threads() == other
        with budget.tallying():  # the tally's threads are its own, each on one torch thread
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(("threads", "spare", "inside"), [(3, 1, 2), (2, 1, 1), (1, 1, 1), (2, 5, 1)])
def test_applied_leaves_spare_cpus_to_another_process(threads, spare, inside) -> None:
    before = torch.get_num_threads()
    with ThreadBudget(cpus=3, threads=threads, workers=0, tally_threads=1, tally_workers=0).applied(spare=spare):
        assert torch.get_num_threads() == inside  # one thread at least
    assert torch.get_num_threads() == before


# Allocate and touch a 64 MiB block, free it, and report how much of it the process still holds (resident MiB).
PROBE = """
import json, sys
import numpy as np
if sys.argv[1] == "tuned":
    from benchmark.runtime import tune_allocator
    assert tune_allocator() and tune_allocator()  # idempotent
    import pyarrow as pa
    assert pa.default_memory_pool().backend_name == "system"  # Arrow shares the tuned malloc
def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
base = resident_mib()
block = np.ones(8 << 20)  # 64 MiB, above glibc's default mmap threshold
held = resident_mib() - base
del block
print(json.dumps([held, resident_mib() - base]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_tuned_allocator_keeps_large_freed_blocks_for_reuse() -> None:
    def resident(mode: str) -> list[float]:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    held, after_free = resident("plain")
    assert held >= 60 and after_free < 8  # glibc's default: the block goes back to the kernel on free
    held, after_free = resident("tuned")
    assert held >= 60 and after_free >= 60  # tuned: kept, so the next batch reuses it without page faults


def test_cyclic_gc_pause_restores_the_collector() -> None:
    import gc

    from benchmark.runtime import cyclic_gc_paused

    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
        gc.disable()  # a caller that had it off keeps it off
    assert gc.isenabled()
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
