"""One dissection across processes, GPUs and nodes with ``torch.distributed``, identical to a single run.

A run launched by ``torchrun`` (or ``benchmark score --nproc N``, which starts the same launcher on this machine)
is a process group of ``WORLD_SIZE`` ranks. The rows of the run are cut into the single run's batches, and the
batches are sharded contiguously across the ranks (:func:`shard_bounds`, the split of ``datasets``'
``Dataset.shard(contiguous=True)``): every rank reads only the rows of its shard and runs the forward pass on
exactly the batches a single run would, so every activation is computed from the same input tensor. The ranks'
streaming states are then merged exactly (:mod:`benchmark.dissect`): per-unit top values gathered so the
threshold is the single run's quantile, top images merged by (value, row), tally counts ``all_reduce``d.

Back-ends: ``nccl`` when the run's device is CUDA (one GPU per rank, ``cuda:LOCAL_RANK``), ``gloo`` on CPU.
Python objects (the streaming states, on the CPU) always travel over a ``gloo`` group. Every collective has the
timeout given at :func:`init` (``--dist-timeout``): when a rank crashes, its peers' collectives fail at once;
when it hangs, they fail after the timeout. Either way each surviving rank raises :class:`PeerFailure` (a
:class:`~broden.errors.BrodenError`), and :func:`claim_report` lets exactly one rank print the error that ended
the run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from broden.errors import BrodenError

T = TypeVar("T")

#: ``--dist-timeout`` default, in seconds: how long a rank waits at a collective for the others (PyTorch's own
#: default for gloo). A crashed rank stops the others at once; the timeout bounds a hung one.
DEFAULT_TIMEOUT_S = 1800.0


def shard_bounds(num_items: int, world_size: int, rank: int) -> tuple[int, int]:
    """Items ``[start, end)`` of shard ``rank`` of ``world_size`` contiguous shards of ``num_items`` items.

    The split of ``datasets.Dataset.shard(num_shards=world_size, index=rank, contiguous=True)``: the first
    ``num_items % world_size`` shards hold one item more than the others; a shard may be empty.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise BrodenError(f"rank {rank} is not in a group of {world_size} processes")
    size, extra = divmod(num_items, world_size)
    start = size * rank + min(rank, extra)
    return start, start + size + (1 if rank < extra else 0)


#: the group :func:`init` joined (what :func:`current` returns while it lasts), like torch.distributed's default group
_joined: Group | None = None


class PeerFailure(BrodenError):
    """A collective failed: another rank crashed, raised, or did not answer within the group's timeout."""


@dataclass
class Group:
    """The ranks of one run. ``world_size == 1`` is a plain single process: every collective is the identity."""

    rank: int = 0
    world_size: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    _objects: Any = field(default=None, repr=False)  # gloo group for Python objects (None: the default group)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    # -- collectives ---------------------------------------------------------------------------------------------
    def gather(self, obj: T) -> list[T] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None on the other ranks."""
        if not self.distributed:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        self._call("gathering the ranks' states", dist.gather_object, obj, out, dst=0, group=self._objects)
        return out

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj`` on every rank, in rank order."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        self._call("comparing the ranks' set-up", dist.all_gather_object, out, obj, group=self._objects)
        return out

    def broadcast(self, obj: T | None) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj  # type: ignore[return-value]
        box = [obj]
        self._call("sending the thresholds", dist.broadcast_object_list, box, src=0, group=self._objects)
        return box[0]

    def sum_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Sum each tensor over the ranks, in place, on its own device (``all_reduce``; exact for integers)."""
        if self.distributed:
            for t in tensors:
                self._call("summing the tallies", dist.all_reduce, t, dist.ReduceOp.SUM)

    def barrier(self) -> None:
        if self.distributed:
            self._call("waiting for the other ranks", dist.barrier, group=self._objects)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except RuntimeError as exc:  # gloo/nccl errors (DistError and its kin derive from RuntimeError)
            raise PeerFailure(
                f"rank {self.rank}: another of the {self.world_size} processes failed or did not answer within "
                f"--dist-timeout {self.timeout_s:g}s while {what}; run the same command again to resume"
            ) from exc

    def close(self) -> None:
        global _joined
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
        _joined = None


def claim_report() -> bool:
    """Whether this process should print the error that ends the run: the first rank of a launched run to fail
    claims the report in the launcher's key-value store (``MASTER_ADDR:MASTER_PORT``), so a run prints one error
    however many ranks stop, before or after they joined the group. A single process always reports, and so does
    every rank when the store cannot be reached (its host is gone)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return True
    key = "broden/report/{}/{}".format(os.environ.get("TORCHELASTIC_RUN_ID", ""),
                                       os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                              timeout=timedelta(seconds=5))
        return store.add(key, 1) == 1
    except (RuntimeError, KeyError, ValueError, OSError):
        return True


def rank_device(device: str) -> str:
    """The device of this rank: ``auto`` is CUDA when available, else the CPU; under a launcher (``LOCAL_RANK``
    set) ``cuda`` means ``cuda:LOCAL_RANK``. Without CUDA a ``cuda`` device is returned as given (the run's settings
    check then says CUDA is not available)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if "LOCAL_RANK" not in os.environ or not device.startswith("cuda") or not torch.cuda.is_available():
        return device
    local = int(os.environ["LOCAL_RANK"])
    if device not in ("cuda", f"cuda:{local}") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise BrodenError(f"--device {device}: under torchrun each process uses the GPU of its LOCAL_RANK; "
                          "pass --device cuda")
    count = torch.cuda.device_count()
    if local >= count:
        raise BrodenError(f"LOCAL_RANK {local}: this node has {count} GPU(s); start at most {count} processes "
                          "per node (--nproc-per-node)")
    return f"cuda:{local}" if device == "cuda" else device


def init(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Group:
    """Join the process group described by torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...),
    or return a single-process group when there is none. ``device`` is this rank's device (:func:`rank_device`):
    nccl for CUDA (bound to that GPU), gloo otherwise."""
    if timeout_s <= 0:
        raise BrodenError(f"--dist-timeout {timeout_s:g}: must be a positive number of seconds")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Group(timeout_s=timeout_s)
    timeout = timedelta(seconds=timeout_s)
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    try:
        if cuda:
            torch.cuda.set_device(torch.device(device))
            dist.init_process_group("nccl", timeout=timeout, device_id=torch.device(device))
            objects = dist.new_group(backend="gloo", timeout=timeout)
        else:
            dist.init_process_group("gloo", timeout=timeout)
            objects = None
    except (RuntimeError, ValueError) as exc:
        raise BrodenError(f"could not join the process group of {world} processes ({exc}); launch the run with "
                          "torchrun (see docs/distributed.md)") from exc
    global _joined
    _joined = Group(rank=dist.get_rank(), world_size=dist.get_world_size(), timeout_s=timeout_s, _objects=objects)
    return _joined


def current(timeout_s: float = DEFAULT_TIMEOUT_S) -> Group:
    """The group this process joined with :func:`init`, or the one it joined itself with
    ``torch.distributed.init_process_group`` (``timeout_s``: the timeout it was given, for messages), else one
    process."""
    if _joined is not None and dist.is_initialized():
        return _joined
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return Group(timeout_s=timeout_s)
    objects = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return Group(rank=dist.get_rank(), world_size=dist.get_world_size(), timeout_s=timeout_s, _objects=objects)


def launch(nproc: int, module_args: list[str]) -> int:
    """Run ``python -m <module_args>`` as ``nproc`` processes on this machine with torchrun's own launcher
    (``torch.distributed.run``, a standalone c10d rendezvous, no restarts); returns the run's exit status (that of
    the first failed rank). The ranks print their own output; the launcher's log lines are silenced."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if nproc < 1:
        raise BrodenError(f"--nproc {nproc}: must be at least 1")
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "-m", module_args[0]])
    args.training_script_args = module_args[1:]  # not parsed: torchrun would take --nproc for one of its options
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as exc:
        code = exc.get_first_failure()[1].exitcode
        return code if code > 0 else 1
    return 0
