"""The dissection run: two passes over the data, checkpoints, and the results file.

Pass 1 runs the model once over the images (decoded in DataLoader workers), taps every requested layer in the same
forward pass, and streams each unit's activations into its top-quantile threshold and its top-k images, while
caching the activations as float16 on disk (when they fit ``cache_budget_bytes``). Pass 2 reads the cache (or
recomputes the forward pass when it did not fit), decodes the masks in workers and tallies unit/label
intersections. The top images' activation maps (``top_maps.npz``) and then the results (``results.json``) are
written last, atomically: ``results.json`` exists only for a finished run.

State is checkpointed every ``checkpoint_every_s`` seconds under ``OUT/cache/``, keyed on everything that
determines the results, so an interrupted run resumes where it stopped and gives the same results, and a stale
checkpoint is never reused. Memory does not grow with the number of images.

Distributed (:mod:`benchmark.distributed`): each rank runs both passes on its contiguous shard of the run's
batches and checkpoints on its own (``OUT/cache/rank-<r>/``). Between the passes the ranks' streaming states are
gathered on rank 0 and merged exactly (:class:`~benchmark.quantile.ShardQuantile`,
:meth:`~benchmark.topk.TopImages.merge`), and the thresholds sent back; after pass 2 every tally count is summed
over the ranks. Rank 0 writes the outputs, identical to a single process's but for timings and ``world_size``.
The merge is redone on every launch from the ranks' saved pass-1 states, so a relaunch with the same number of
processes resumes every rank where it stopped.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark import bootstrap
from benchmark import compiled as compiled_loops
from benchmark.activations import ActivationCache, Batch, SuppliedActivations
from benchmark.activations.producers import ModelProducer, SuppliedProducer
from benchmark.checkpoint import Checkpoint, run_key
from benchmark.distributed import Group, current, rank_device, shard_bounds
from benchmark.models.loader import LoadedModel
from benchmark.protocol import COMPAT_MODES, DEFAULT_COMPAT, IOU_THRESHOLD, QUANTILE, ordered_categories
from benchmark.quantile import ShardQuantile, sketch_switch_row
from benchmark.results import SCHEMA_VERSION, parse_json_strict, write_results
from benchmark.rotation import RotatedProducer, Rotation
from benchmark.runtime import ThreadBudget, cpus_per_process, cyclic_gc_paused, plan_threads, tune_allocator
from benchmark.scoring import held_out_units, score_units
from benchmark.summary import summarize_layer
from benchmark.tally import BatchCounter, Tally, TallyInput
from benchmark.topk import TopImages
from broden.dataset import Broden
from broden.errors import BrodenError
from broden.utils import atomic
from broden.utils.cli import check_number
from broden.utils.disk import free_bytes, human_bytes
from broden.utils.progress import say, track
from broden.version import __version__

RESULTS_FILE = "results.json"
TOP_MAPS_FILE = "top_maps.npz"
CACHE_DIR = "cache"
#: Test hook ``N[:HOW][@RANK]``: after N batches (both passes together) raise KeyboardInterrupt, as if the user hit
#: Ctrl-C; HOW ``kill``: SIGKILL itself, as a crash would; ``raise``: raise a BrodenError, as a bad input would;
#: ``hang``: stop answering. ``@RANK``: only on that rank of a distributed run (default: every process).
INTERRUPT_ENV = "BRODEN_TEST_INTERRUPT_AFTER"
INTERRUPT_MODES = ("interrupt", "kill", "raise", "hang")


@dataclass
class Settings:
    """Everything the user can set for a run (``benchmark score`` options; keyword arguments of
    :func:`benchmark.score`).

    ``device`` ``auto``: CUDA when available, else the CPU (resolved by :meth:`check`). ``amp`` runs the forward
    pass in mixed precision (off by default: it changes the activations, and the results record it). ``quiet``
    hides the progress bars.
    """

    layers: list[str] | None = None  # None: the model's LAYERS
    quantile: float = QUANTILE
    iou_threshold: float = IOU_THRESHOLD
    categories: list[str] | None = None  # None: every category of the dataset
    compat: str = DEFAULT_COMPAT
    upsample: str = "bilinear"
    top_k: int = 10
    batch_size: int = 32
    device: str = "auto"
    amp: bool = False
    quiet: bool = False
    workers: int | None = None  # DataLoader worker processes; None: from the thread budget
    threads: int | None = None  # torch intra-op threads; None: from the thread budget
    cache_budget_bytes: int = 8 * 10**9
    keep_cache: bool = False
    force: bool = False
    checkpoint_every_s: float = 60.0
    seed: int = 0  # bootstrap replicates and the random rotation
    bootstrap: int = bootstrap.REPLICATES  # replicates for the confidence intervals; 0: no intervals
    rotate: float | None = None  # alpha of the random rotation of every layer's units; None: no rotation

    def check(self) -> None:
        """Reject impossible settings with a one-line error; resolve ``device='auto'``, and under a launcher
        ``cuda`` to this process's GPU (:func:`benchmark.distributed.rank_device`)."""
        self.device = rank_device(self.device)
        if not 0 < self.quantile < 1:
            raise BrodenError(f"--quantile {self.quantile}: must lie strictly between 0 and 1 (0.005 = top 0.5%)")
        if not 0 <= self.iou_threshold <= 1:
            raise BrodenError(f"--iou-threshold {self.iou_threshold}: must lie in [0, 1]")
        if self.batch_size < 1 or self.top_k < 1 or self.top_k > 100:
            raise BrodenError("--batch-size must be >= 1 and --top-k between 1 and 100")
        if self.compat not in COMPAT_MODES:
            raise BrodenError(f"--compat {self.compat}: choose {' or '.join(COMPAT_MODES)}")
        check_device(self.device)
        check_number("--checkpoint-every", self.checkpoint_every_s, minimum=0, allow_inf=True)
        check_number("--cache-budget", self.cache_budget_bytes / 1e9, minimum=0)
        if self.bootstrap < 0:
            raise BrodenError(f"--bootstrap {self.bootstrap}: give a number of replicates (0: no intervals)")
        if self.rotate is not None:
            Rotation(self.rotate, self.seed)  # checks alpha
        self.budget()

    def budget(self) -> ThreadBudget:
        """The run's split of the CPUs between torch threads and DataLoader workers (``--threads``, ``--workers``)."""
        return plan_threads(self.threads, self.workers, self.device)


def check_device(device: str) -> None:
    """Refuse a torch device this machine cannot run a dissection on, with one line saying which to use."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError) as exc:
        raise BrodenError(f"--device {device}: not a torch device ({' '.join(str(exc).split())[:120]}); "
                          "use cpu, cuda or cuda:N") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()}
    if kind not in available:
        raise BrodenError(f"--device {device}: {kind} tensors cannot be dissected here; use cpu or cuda")
    if not available[kind]:
        raise BrodenError(f"--device {device}: {kind.upper() if kind == 'cuda' else kind} is not available here "
                          f"(torch {torch.__version__}); use --device cpu")
    if kind == "cuda" and torch.device(device).index is not None and torch.device(device).index >= torch.cuda.device_count():
        raise BrodenError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                          "use cuda:0 .. cuda:N-1")


@dataclass
class Outcome:
    path: Path  # results.json
    results: dict[str, Any] | None  # None on the ranks other than 0 of a distributed run
    skipped: bool  # True: a finished run with the same key was already there


def score_model(model: LoadedModel, dataset: Broden, out: str | os.PathLike[str], settings: Settings,
                group: Group | None = None) -> Outcome:
    """Dissect ``settings.layers`` (default: the model's LAYERS) of ``model`` on ``dataset``; results in ``out``.

    ``group``: the processes sharing the run (default: the process group this process joined, if any, else this
    process alone); every rank calls this with the same arguments."""
    settings.check()
    layers = settings.layers or model.layers
    if not layers:
        raise BrodenError(f"{model.name}: no layers to dissect; pass --layers (list them with 'benchmark layers') "
                          "or set LAYERS in the model file")

    def run() -> _Run:
        tune_allocator()  # before the shape probe's first forward
        producer = ModelProducer(model, dataset, list(dict.fromkeys(layers)), settings.device, amp=settings.amp)
        return _Run(_rotated(producer, settings), dataset, Path(out), settings, model.record(), group or current())

    return _checked(dataset, settings, run).execute()


def score_activations(supplied: SuppliedActivations, dataset: Broden, out: str | os.PathLike[str],
                      settings: Settings, name: str | None = None, group: Group | None = None) -> Outcome:
    """Dissect activations computed elsewhere (``--activations``) on the dataset rows they name (``group`` as in
    :func:`score_model`)."""
    settings.check()
    record = {"name": name or supplied.path.stem, "source": "activations", "file": str(supplied.path),
              "file_sha256": None, "weights_sha256": None, "weights_url": None, "architecture": None,
              "training_data": None, "paper": None, "metadata": {}}
    return _checked(dataset, settings, lambda: _Run(_rotated(SuppliedProducer(supplied, dataset), settings), dataset,
                                                    Path(out), settings, record, group or current())).execute()


def _rotated(producer: ModelProducer | SuppliedProducer, settings: Settings) -> Any:
    """``producer`` with its activations rotated when ``--rotate`` asks for alpha > 0 (alpha 0 is the plain run)."""
    if settings.rotate:
        return RotatedProducer(producer, Rotation(settings.rotate, settings.seed))
    return producer


def _checked(dataset: Broden, settings: Settings, run: Callable[[], _Run]) -> _Run:
    """``run()``, the run set up (its model loaded, its compiled loops too), while the dataset's metadata, label table
    and mask headers are checked (:func:`broden.validate.start_preflight`, in a child process): a bad dataset is
    refused before pass 1, not half-way, and its error comes first when the set-up fails too."""
    from broden.validate import start_preflight

    if len(dataset) == 0:
        raise BrodenError(f"{dataset.path}: the dataset has no images")
    have = dataset.labels.category_names
    for c in settings.categories or []:
        if c not in have:
            raise BrodenError(f"category {c!r} is not in the dataset {dataset.path} (it has {', '.join(have)}); "
                              "fix --categories")
    with start_preflight(dataset, workers=cpus_per_process()) as check:
        try:
            with settings.budget().applied(spare=int(check.in_child)):  # the check's child takes a CPU
                ready = run()
        except Exception:
            check.result()
            raise
        check.result()
    return ready


def _exact_limit(num_rows: int, shape: tuple[int, int, int]) -> int:
    """Values per unit in the run (rows x h x w), capped: TopQuantile then keeps only the top it needs, exactly."""
    return max(1, min(num_rows * shape[1] * shape[2], 2**24))


class _Run:
    """One run's state between the passes (on one rank: its shard); ``execute`` resumes from the checkpoint."""

    def __init__(self, producer, dataset: Broden, out: Path, settings: Settings, model_record: dict[str, Any],
                 group: Group) -> None:
        self.producer, self.dataset, self.out, self.settings = producer, dataset, out, settings
        self.model_record = model_record
        self.group = group
        self.categories = ordered_categories(settings.categories or dataset.labels.category_names)
        self.protocol = {
            "quantile": settings.quantile,
            "iou_threshold": settings.iou_threshold,
            "categories": self.categories,
            "compat": settings.compat,
            "upsample": settings.upsample,
            "threshold_method": None,  # filled from TopQuantile.method
            "preprocess": producer.describe_preprocess(),
            "batch_size": settings.batch_size,
            "amp": settings.amp and producer.kind == "model",
            "seed": settings.seed,
            "bootstrap": {"folds": bootstrap.FOLDS, "replicates": settings.bootstrap, "seed": settings.seed,
                          "confidence": bootstrap.CONFIDENCE} if settings.bootstrap else None,
            "rotation": None if settings.rotate is None else Rotation(settings.rotate, settings.seed).record(),
            "held_out": {"label_split": "train", "iou_split": "val"},
        }
        self.key = run_key({
            "source": producer.identity(), "layers": producer.layers, "dataset": dataset.fingerprint,
            "rows": np.asarray(producer.indices).tolist() if producer.kind == "supplied" else len(producer.indices),
            "protocol": {k: v for k, v in self.protocol.items() if k not in ("threshold_method", "batch_size")},
            "top_k": settings.top_k, "activation_dtype": "float16",
        })
        self.n = len(producer.indices)
        # This rank's shard: whole batches of the single run, so every forward pass sees the same input tensor.
        bs = settings.batch_size
        first_batch, stop_batch = shard_bounds(-(-self.n // bs), group.world_size, group.rank)
        self.first, self.stop = first_batch * bs, min(stop_batch * bs, self.n)
        self.device = settings.device
        spec, _, only = os.environ.get(INTERRUPT_ENV, "").partition("@")
        count, _, how = spec.partition(":")
        self.interrupt_how = how or "interrupt"
        if self.interrupt_how not in INTERRUPT_MODES:
            raise BrodenError(f"{INTERRUPT_ENV}={spec}: choose N or N:{'|N:'.join(INTERRUPT_MODES[1:])}")
        self.interrupt_after = int(count) if count and (not only or int(only) == group.rank) else None
        self.batches_done = 0
        self.quiet = settings.quiet or group.rank != 0  # progress bars: rank 0's only
        self.allocator_tuned = tune_allocator()
        self.budget = settings.budget()
        # From COMPILED_MIN_MAPS (image, unit) maps on (below, loading them costs more than they save), pass 2 decodes
        # the masks with the compiled loops, and on the CPU counts with them. They are loaded now: the loading
        # overlaps the dataset check (_checked) instead of holding up pass 2, whose DataLoader workers inherit them.
        maps = (self.stop - self.first) * sum(shape[0] for shape in producer.shapes.values())
        self.compiled = maps >= compiled_loops.COMPILED_MIN_MAPS
        if self.compiled:
            compiled_loops.kernels()

    # -- the run -------------------------------------------------------------------------------------------------
    def execute(self) -> Outcome:
        results_path = self.out / RESULTS_FILE
        if results_path.is_file() and not self.settings.force:
            # written validated and atomically by a previous run: reading its key needs no schema check
            existing = parse_json_strict(results_path.read_bytes(), str(results_path))
            if existing.get("environment", {}).get("run_key") == self.key:
                return Outcome(results_path, existing if self.group.rank == 0 else None, skipped=True)
            raise BrodenError(f"{results_path} holds the results of a different run (model, layers, settings or "
                              "dataset differ); pass --force to replace them, or choose another --out")
        self.started = time.perf_counter()
        self._restore()
        try:
            with self.budget.applied():
                if self.stage == "forward":
                    self._forward_pass()
                self._merge_pass1()
                if self.stage == "tally":
                    self._tally_pass()
        finally:
            if self.cache is not None:
                self.cache.close()
        self._merge_tallies()
        self.timings["total_s"] += time.perf_counter() - self.started
        results = None
        if self.group.rank == 0:
            with cyclic_gc_paused():
                results = self._results()
                self.out.mkdir(parents=True, exist_ok=True)
                self._write_top_maps(self.out / TOP_MAPS_FILE)
                write_results(results_path, results, check_every_unit=False)
            if not self.settings.keep_cache:
                self.ckpt.remove()
        self.group.barrier()  # every rank ends with the outputs written, and the ranks leave the group together
        return Outcome(results_path, results, skipped=False)

    def _restore(self) -> None:
        src, shapes, n, g = self.producer, self.producer.shapes, self.n, self.group
        if len(set(g.all_gather(self.key))) > 1:
            raise BrodenError("the processes of this run disagree on what to score (model, weights, dataset or "
                              "options differ between them); give every process the same command and files")
        self.ckpt = Checkpoint(self.out / CACHE_DIR, self.key, rank=g.rank, world_size=g.world_size,
                               batch_size=self.settings.batch_size)
        if g.rank == 0:
            note = self.ckpt.prepare()
            if note:
                say(f"note: {note}")
        g.barrier()  # the directory is ready before any rank reads its checkpoint
        rows = self.stop - self.first
        state = self.ckpt.load() or {}  # same key, same results: even a --force run resumes its own checkpoint
        if state.get("use_cache") and not ActivationCache.intact(self.ckpt.dir, shapes, rows):
            state = self.ckpt.load(fresh=True) or {}  # the cache behind this checkpoint is gone: start over
        self.stage = state.get("stage", "forward")
        self.row = int(state.get("row", self.first))
        self.timings = dict(state.get("timings", {"forward_s": 0.0, "threshold_s": 0.0, "tally_s": 0.0, "total_s": 0.0}))
        if g.distributed:
            self.timings.setdefault("merge_s", 0.0)
        self.use_cache = state.get("use_cache")
        if self.use_cache is None:  # decided on each rank alike: by the whole run's size and the free space
            need = ActivationCache.nbytes(shapes, n)
            self.use_cache = src.kind == "model" and need <= self.settings.cache_budget_bytes
            if self.use_cache and need > free_bytes(self.ckpt.dir):  # checked before pass 1, not found out half-way
                if g.rank == 0:
                    say(f"note: the activation cache needs {human_bytes(need)}, only "
                        f"{human_bytes(free_bytes(self.ckpt.dir))} free in {self.ckpt.dir}; pass 2 recomputes the "
                        "forward pass instead")
                self.use_cache = False
        self.cache = (ActivationCache(self.ckpt.dir, shapes, rows, resume=bool(state), first_row=self.first)
                      if self.use_cache else None)
        dev = self.device

        def new_quantile(shape: tuple[int, int, int]) -> ShardQuantile:
            limit = _exact_limit(n, shape)
            switch = (sketch_switch_row(n, shape[1] * shape[2], self.settings.batch_size, limit)
                      if g.distributed else None)
            total = n * shape[1] * shape[2]
            return ShardQuantile(shape[0], self.settings.quantile, exact_limit=limit, switch_row=switch, device=dev,
                                 stream_total=total if total <= limit else None)

        self.quant = {
            name: ShardQuantile.from_state_dict(state["quantiles"][name], device=dev) if "quantiles" in state
            else new_quantile(shapes[name])
            for name in src.layers
        }
        self.tops = {
            name: TopImages.from_state_dict(state["tops"][name], device=dev) if "tops" in state
            else TopImages(shapes[name][0], self.settings.top_k, shapes[name][1:], device=dev)
            for name in src.layers
        }
        label_category = self.dataset.labels.primary_categories(self.categories)
        num_labels = self.dataset.labels.max_number + 1
        # NetDissect-Lite's fallback is the last category of the dataset's own order, not of the display order
        fallback = [c for c in self.dataset.labels.category_names if c in self.categories][-1]
        self.tallies = {
            name: Tally.from_state_dict(state["tallies"][name], device=dev) if "tallies" in state
            else Tally(shapes[name][0], num_labels, self.categories, label_category, compat=self.settings.compat,
                       upsample=self.settings.upsample, device=dev, fallback_category=fallback,
                       folds=bootstrap.FOLDS)
            for name in src.layers
        }
        for part in (*self.quant.values(), *self.tops.values(), *self.tallies.values()):
            part.compiled = self.compiled
        self.last_save = time.perf_counter()

    def _forward_pass(self) -> None:
        """Pass 1 over this rank's rows: streaming thresholds and top images (and the cache)."""
        t0, q_time = time.perf_counter(), 0.0
        stream = self.producer.batches(self.settings.batch_size, self.budget.workers, self.row, None,
                                       stop_row=self.stop)
        for batch, acts in track(stream, "pass 1/2: forward, thresholds, top images", total=self.stop - self.row,
                                 advance_by=lambda item: len(item[0].ids), quiet=self.quiet):
            for name, a in acts.items():
                if self.cache is not None:
                    self.cache.write(name, batch.start, a)
                tq = time.perf_counter()
                self.quant[name].add(a, batch.start)  # float16: kept as such
                q_time += time.perf_counter() - tq
                self.tops[name].add(a, batch.start)
            self.row = batch.end
            if self._checkpoint_due():
                self.timings["forward_s"] += time.perf_counter() - t0 - q_time
                self.timings["threshold_s"] += q_time
                t0, q_time = time.perf_counter(), 0.0
                self._save()
            self._tick()
        self.timings["threshold_s"] += q_time
        self.timings["forward_s"] += time.perf_counter() - t0 - q_time
        self.stage, self.row = "tally", self.first
        self._save()

    def _merge_pass1(self) -> None:
        """The thresholds of the whole run on every rank, and on rank 0 how they were computed and the top images
        (:attr:`threshold_method`, :attr:`final_tops`): the ranks' pass-1 states gathered and merged in rank order.
        The merged thresholds state is dropped once read, and each rank's own state (kept for its checkpoints)
        frees its pending buffer: at full Broden scale the two held 24 MB through pass 2 and the results."""
        g, t0 = self.group, time.perf_counter()
        if g.distributed:
            parts = g.gather({"quantiles": {k: q.state_dict() for k, q in self.quant.items()},
                              "tops": {k: t.state_dict() for k, t in self.tops.items()}})
            thresholds = None
            if parts is not None:
                final = {name: _merged(ShardQuantile, [p["quantiles"][name] for p in parts], self.device).result()
                         for name in self.producer.layers}
                self.final_tops = {name: _merged(TopImages, [p["tops"][name] for p in parts], self.device)
                                   for name in self.producer.layers}
                thresholds = {name: q.thresholds().cpu() for name, q in final.items()}
                self.threshold_method = next(iter(final.values())).method
                del parts, final
            self.thresholds = {k: v.to(self.device) for k, v in g.broadcast(thresholds).items()}
            self.timings["merge_s"] += time.perf_counter() - t0
        else:
            final = {name: q.result() for name, q in self.quant.items()}
            self.final_tops = self.tops
            self.thresholds = {name: q.thresholds().to(self.device) for name, q in final.items()}
            self.threshold_method = next(iter(final.values())).method
            del final
            self.timings["threshold_s"] += time.perf_counter() - t0
        for q in self.quant.values():
            q.release_pending()

    def _tally_pass(self) -> None:
        """Pass 2 over this rank's rows: intersections of active regions and labels, from the cache (or the
        supplied activations) or a second forward pass.

        With stored activations and the tally on the CPU, each batch is counted where its masks are decoded
        (:class:`_CountBatch`, in the ``tally_workers`` DataLoader processes) and this process only adds the
        counts; otherwise it counts each batch here, on the run's device, with ``tally_threads`` threads."""
        t0 = time.perf_counter()
        recompute = self.cache is None and self.producer.kind == "model"  # else no forward pass in this pass
        workers = self.budget.workers if recompute else self.budget.tally_workers
        stored = None  # reads a batch's stored activations
        if self.cache is not None:
            stored = self.cache.rows()
        elif not recompute:
            stored = self.producer.read
        job = None
        if stored is not None and torch.device(self.device).type == "cpu":
            job = _CountBatch(stored, {name: t.counter for name, t in self.tallies.items()}, self.thresholds,
                              self.budget.tally_threads)
        stream = self.producer.batches(self.settings.batch_size, workers, self.row, self.categories,
                                       need_acts=recompute or (job is None and self.cache is None),
                                       stop_row=self.stop, then=job, compiled=self.compiled)
        # With a job, the counting happens while the stream is iterated (in the workers, or here with none); without
        # one, the loop's own tallying below: a second forward pass in the stream keeps the forward's threads.
        with self.budget.tallying() if job is not None else contextlib.nullcontext():
            for batch, acts in track(stream, "pass 2/2: tally", total=self.stop - self.row,
                                     advance_by=lambda item: len(item[0].ids), quiet=self.quiet):
                if batch.counts is None:
                    if acts is None:
                        acts = stored(batch.start, batch.end, batch.ids)
                    with self.budget.tallying():
                        for name in self.producer.layers:
                            self.tallies[name].add(_tally_input(batch, acts[name].to(self.device)),
                                                   self.thresholds[name], threads=self.budget.tally_threads)
                else:
                    for name in self.producer.layers:
                        self.tallies[name].add_counts(batch.counts[name])
                self.row = batch.end
                if self._checkpoint_due():
                    self.timings["tally_s"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self._save()
                self._tick()
        self.timings["tally_s"] += time.perf_counter() - t0
        if self.group.distributed:
            self._save()  # a relaunch after a failure in the final sum redoes only the merges
        self.stage = "done"

    def _merge_tallies(self) -> None:
        """Every count of every tally summed over the ranks."""
        if self.group.distributed:
            t0 = time.perf_counter()
            for tally in self.tallies.values():
                self.group.sum_(list(tally.counts().values()))
            self.timings["merge_s"] += time.perf_counter() - t0

    # -- checkpoints -----------------------------------------------------------------------------------------------
    def _checkpoint_due(self) -> bool:
        return self.row < self.stop and time.perf_counter() - self.last_save >= self.settings.checkpoint_every_s

    def _save(self) -> None:
        if self.cache is not None:
            self.cache.flush()  # the checkpoint may only point at cache rows that are on disk
        now = time.perf_counter()
        state = {
            "stage": self.stage, "row": self.row, "use_cache": self.use_cache,
            "timings": {**self.timings, "total_s": self.timings["total_s"] + now - self.started},
            "quantiles": {k: q.state_dict() for k, q in self.quant.items()},
            "tops": {k: t.state_dict() for k, t in self.tops.items()},
        }
        if self.stage == "tally":
            state["tallies"] = {k: t.state_dict() for k, t in self.tallies.items()}
        self.ckpt.save(state)
        self.last_save = now

    def _tick(self) -> None:
        self.batches_done += 1
        if self.interrupt_after is None or self.batches_done < self.interrupt_after:
            return
        if self.interrupt_how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.interrupt_how == "raise":
            raise BrodenError(f"{INTERRUPT_ENV}: rank {self.group.rank} stops after {self.batches_done} batches")
        while self.interrupt_how == "hang":
            time.sleep(60)
        raise KeyboardInterrupt(f"{INTERRUPT_ENV}={self.interrupt_after}")

    # -- outputs ---------------------------------------------------------------------------------------------------
    def _row_ids(self, rows: torch.Tensor) -> np.ndarray:
        """Dataset ids of run rows (``-1`` -> '')."""
        flat = rows.cpu().numpy().ravel()
        known = np.flatnonzero(flat >= 0)
        out = np.full(flat.shape, "", dtype=object)
        out[known] = self.dataset.ids_at(np.asarray(self.producer.indices)[flat[known]])
        return out.astype(str).reshape(tuple(rows.shape))

    def _results(self) -> dict[str, Any]:
        label_names = {lab.number: lab.name for lab in self.dataset.labels.labels}
        layers = []
        started, bootstrap_s = time.perf_counter(), 0.0
        protocol = {**self.protocol, "threshold_method": f"{self.threshold_method}; activations rounded to float16"}
        if self.settings.bootstrap:
            first = self.tallies[self.producer.layers[0]]
            protocol["bootstrap"] = bootstrap.protocol_record(first, self.settings.bootstrap, self.settings.seed)
        for name in self.producer.layers:
            tally = self.tallies[name]
            units = score_units(tally, label_names)
            th = self.thresholds[name].cpu().tolist()
            ids = self._row_ids(self.final_tops[name].rows)
            values = self.final_tops[name].values.cpu().tolist()
            for unit in units:
                u = unit["unit"]
                unit["threshold"] = float(th[u])
                unit["top_images"] = [{"id": str(i), "activation": float(v)} for i, v in zip(ids[u], values[u]) if i]
            layer = {
                "name": name,
                "num_units": self.producer.shapes[name][0],
                "shape": list(self.producer.shapes[name]),
                "units": units,
                "summary": summarize_layer(units, self.categories, self.settings.iou_threshold),
            }
            if self.settings.bootstrap:
                tb = time.perf_counter()
                layer["intervals"] = bootstrap.layer_intervals(tally, units, self.settings.iou_threshold,
                                                               replicates=self.settings.bootstrap, seed=self.settings.seed)
                bootstrap_s += time.perf_counter() - tb
            if 0 < int(tally.train_images) < tally.images:
                held = held_out_units(tally, label_names)
                for unit, h in zip(units, held):
                    unit["held_out"] = {k: h[k] for k in ("label", "category", "iou", "train_iou")}
                layer["held_out"] = {"summary": summarize_layer(held, self.categories, self.settings.iou_threshold)}
            layers.append(layer)
        if not any("held_out" in layer for layer in layers):
            protocol["held_out"] = None  # one split only: nothing to hold out
        self.timings["bootstrap_s"] = bootstrap_s  # part of scoring_s
        self.timings["scoring_s"] = time.perf_counter() - started
        self.timings["total_s"] += self.timings["scoring_s"]
        meta = self.dataset.meta
        return {
            "schema": SCHEMA_VERSION,
            "name": self.model_record["name"],
            "model": self.model_record,
            "dataset": {
                "name": str(meta.get("name") or self.dataset.path.name),
                "fingerprint": self.dataset.fingerprint,
                "path": str(self.dataset.path),
                "num_images": self.n,
                "image_size": meta.get("image_size"),
                "seg_size": meta.get("seg_size"),
                **({"provenance": meta["provenance"]} if meta.get("provenance") else {}),
            },
            "protocol": protocol,
            "provenance": {"kind": "measured"},
            "environment": {
                "broden_version": __version__,
                "torch_version": torch.__version__,
                "python_version": platform.python_version(),
                "device": str(self.device),
                "platform": platform.platform(),
                "world_size": self.group.world_size,
                "run_key": self.key,
                **self.budget.record(),
                "allocator_tuned": self.allocator_tuned,
            },
            "timings": {k: round(float(v), 3) for k, v in self.timings.items()},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "layers": layers,
            "artifacts": {"top_maps": TOP_MAPS_FILE},
        }

    def _write_top_maps(self, path: Path) -> None:
        arrays = {}
        for name, top in self.final_tops.items():
            arrays[f"{name}/maps"] = top.maps.cpu().numpy()
            arrays[f"{name}/ids"] = self._row_ids(top.rows)
        with atomic.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)


def _tally_input(batch: Batch, acts: torch.Tensor) -> TallyInput:
    """A decoded pass-2 batch and one layer's activations (float16, as stored: the tally reads them as they are
    where it can), as the tally takes them."""
    train = torch.tensor([s == "train" for s in batch.splits], dtype=torch.bool)
    return TallyInput(acts, batch.label_maps, batch.image_labels, bootstrap.fold_tensor(batch.ids), train,
                      batch.pixel_labels)


@dataclass
class _CountBatch:
    """``RowBatches(then=...)`` of pass 2 from stored activations: reads a decoded batch's activations and counts
    it for every layer (:meth:`benchmark.tally.BatchCounter.count`), in the DataLoader worker that decoded it
    (on one torch thread there; here, with ``threads``), and drops the label maps, which the counts replace."""

    read: Callable[[int, int, list[str]], dict[str, torch.Tensor]]
    counters: dict[str, BatchCounter]
    thresholds: dict[str, torch.Tensor]
    threads: int

    def __call__(self, batch: Batch) -> None:
        acts = self.read(batch.start, batch.end, batch.ids)
        threads = 1 if torch.utils.data.get_worker_info() is not None else self.threads
        batch.counts = {name: counter.count(_tally_input(batch, acts[name]), self.thresholds[name], threads)
                        for name, counter in self.counters.items()}
        batch.label_maps = batch.pixel_labels = None


def _merged(cls, states: list[dict], device: str):
    """One accumulator of type ``cls`` (``from_state_dict`` / ``merge``) from the states of the ranks, in order."""
    acc = cls.from_state_dict(states[0], device=device)
    for state in states[1:]:
        acc.merge(cls.from_state_dict(state, device=device))
    return acc
