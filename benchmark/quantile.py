"""Per-unit activation thresholds: the value above which a unit's top ``quantile`` of activations lie.

Network Dissection thresholds each unit at the top 0.5% of its activations over every spatial position of every
image, at feature resolution (before upsampling). :class:`TopQuantile` computes that threshold exactly while it can,
from a streaming per-unit top-k, and with a bounded-memory relative-accuracy sketch beyond ``exact_limit`` values.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import torch

from benchmark import compiled as compiled_loops
from benchmark.protocol import QUANTILE
from broden.errors import BrodenError

#: Relative value accuracy of the sketch (see :class:`TopQuantile`).
SKETCH_ALPHA = 0.002
#: Sketch buckets kept per unit, below its largest bucket.
SKETCH_MAX_BINS = 8192
#: Magnitudes at or below this go to the sketch's zero bucket.
SKETCH_MIN_MAGNITUDE = 1e-6

_GAMMA = (1 + SKETCH_ALPHA) / (1 - SKETCH_ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
_KEY_OFFSET = math.ceil(math.log(SKETCH_MIN_MAGNITUDE) / _LOG_GAMMA) - 1
_NO_BUCKET = -(2**40)  # window top before any value: below every real bucket id
#: The one error for activations that are not finite (the thresholds check every value; so do the compiled top images).
NOT_FINITE = "activations contain NaN or infinity; check the model and its preprocessing"
#: Units merged at a time when pending values join the exact top (:meth:`TopQuantile._flush`).
FLUSH_UNITS = 32


class TopQuantile:
    """Per-unit threshold at the top `quantile` over all spatial positions of all images; streaming, mergeable.

    **Definition.** For a unit that has seen ``n`` values, the threshold is the numpy ``'linear'`` quantile at level
    ``1 - quantile``: with the values sorted ascending ``x_0 <= ... <= x_{n-1}`` and ``p = (n - 1) * (1 - quantile)``,
    ``j = floor(p)``, it is ``x_j + (p - j) * (x_{j+1} - x_j)`` (``np.quantile(x, 1 - quantile)``). A unit is active
    where its value is strictly above it. NetDissect and NetDissect-Lite read level 0.994995 (readout 994 of 1000) from
    a randomized sketch whose effective plotting position varies by unit; this definition agrees with theirs to
    within about one order statistic.

    **Exact mode** (``n <= exact_limit``). The level needs only the largest ``ceil(quantile * (n - 1)) + 1`` values.
    Each unit keeps its exact top ``K = ceil(2 * quantile * exact_limit) + 2`` values (all of them while ``n <= K``;
    the factor 2 is the margin the sketch starts from, below): at most ``4 * K * U`` bytes, plus at most
    ``max(K // 2, 1024)`` pending values per unit, in buffers reused by every merge; half that while every value is
    float16 (the scorer's activations are), as they are then kept.
    Values not above the current K-th largest are dropped before any sort. A caller that knows the total count
    (images x h x w) should pass it as ``exact_limit``, and as ``stream_total`` when it is at most ``exact_limit``:
    no sketch can follow, so ``K = ceil(quantile * stream_total) + 2`` (half the memory; at full Broden scale,
    15,500 values per unit instead of 31,000), and the result is exact.

    **Sketch mode** (``n > exact_limit``). The kept top ``K`` seed a per-unit log-bucketed histogram (the DDSketch
    mapping), the other values seen so far are counted as "below"; every later value is bucketed: ``x`` with
    ``|x| > 1e-6`` goes to bucket ``sign(x) * ceil(log_gamma |x|)``, ``gamma = (1 + a) / (1 - a)``,
    ``a = SKETCH_ALPHA = 0.002``, smaller magnitudes to a zero bucket; a bucket reads back as
    ``sign * 2 gamma^k / (gamma + 1)``. The threshold is the ``'linear'`` interpolation between the buckets holding
    ``x_j`` and ``x_{j+1}``, so

        ``|threshold - exact| <= a * max(|x_j|, |x_{j+1}|) + 1e-6``   (0.2% relative, whatever ``n``)

    whenever ``x_j`` is above the "below" mass. That holds unless the stream drifts: the seed holds about twice the
    values needed at the switch, so a stream whose later part reaches the top ``quantile`` at least half as often
    as its first ``exact_limit`` values always qualifies. Each unit keeps the ``SKETCH_MAX_BINS = 8192`` buckets
    below its largest (``8192 * ln(gamma) = 32.8`` in natural log, with both signs counted from 1e-6); lower values
    join the "below" mass. Memory: ``8 * 8192 * U`` bytes (33 MB for 512 units). Units whose level falls in the
    "below" mass get the lowest bucketed value (an upper bound) and are counted in :attr:`method`. Sketches merge by
    adding counts.
    """

    def __init__(
        self,
        num_units: int,
        quantile: float = QUANTILE,
        *,
        exact_limit: int = 2**24,
        device: str | torch.device = "cpu",
        sketch: bool = False,
        stream_total: int | None = None,
    ) -> None:
        """``sketch=True`` starts in sketch mode with an empty seed: the part of a stream after its switch (see
        :class:`ShardQuantile`). ``stream_total``: how many values the whole stream (all its merged parts) will
        hold, when known and at most ``exact_limit`` (see above)."""
        if not 0 < quantile < 1:
            raise BrodenError(f"quantile must be between 0 and 1 (exclusive), got {quantile}")
        if num_units < 1 or exact_limit < 1:
            raise BrodenError("TopQuantile needs num_units >= 1 and exact_limit >= 1")
        if stream_total is not None and not 0 <= stream_total <= exact_limit:
            raise BrodenError(f"stream_total {stream_total} must lie in 0..exact_limit ({exact_limit})")
        self.num_units = int(num_units)
        self.quantile = float(quantile)
        self.exact_limit = int(exact_limit)
        self.device = torch.device(device)
        self.count = 0
        self.stream_total = None if stream_total is None else int(stream_total)
        self._capacity = (math.ceil(2 * self.quantile * self.exact_limit) if stream_total is None
                          else math.ceil(self.quantile * self.stream_total)) + 2
        self._top: torch.Tensor | None = torch.empty(self.num_units, 0, device=self.device)  # sorted descending
        # Exact mode's buffers, grown geometrically and reused by every merge (see _merge): _top is a view of
        # _store's first columns (or a tensor of its own until the first merge), and the first _pending_size
        # columns of _pending hold the values not merged yet.
        self._store: torch.Tensor | None = None
        self._pending: torch.Tensor | None = None
        self._pending_size = 0
        # Sketch (once _top is None): per unit, counts of the SKETCH_MAX_BINS buckets ending at bucket id _hi, and
        # the number of values below them.
        self._bins: torch.Tensor | None = None
        self._hi: torch.Tensor | None = None
        self._below: torch.Tensor | None = None
        self._floor: torch.Tensor | None = None  # bucket id at or below which the "below" values may lie
        #: A setting of the process, not of the state: on the CPU, float16 maps are compacted by a compiled loop.
        self.compiled = False
        self._scratch: np.ndarray | None = None  # the compiled loop's output, reused
        if sketch:
            self._start_sketch()

    # -- streaming -------------------------------------------------------------------------------------------------
    def add(self, acts: torch.Tensor) -> None:
        """Count a batch: ``(B, U, h, w)`` maps or ``(N, U)`` rows of any float dtype.

        With :attr:`compiled` set, contiguous float16 maps on the CPU counted exactly (the scorer's) skip the
        tensor operations up to the pending buffer: :func:`benchmark.kernels.keep_above` checks the values and
        compacts each unit's values above its K-th largest in one pass over the batch, as they are (no transposed
        copy), into what the tensor operations build (``tests/benchmark/test_quantile.py``).
        """
        compiled = self._compiled_for(acts)
        if compiled is not None:
            return self._add_compiled(*compiled)
        if acts.dim() == 4:
            values = acts.transpose(0, 1).reshape(acts.shape[1], -1)
        elif acts.dim() == 2:
            values = acts.t()
        else:
            raise BrodenError(
                f"TopQuantile.add expects (B, U, h, w) or (N, U) activations, got shape {tuple(acts.shape)}"
            )
        if values.shape[0] != self.num_units:
            raise BrodenError(f"TopQuantile was built for {self.num_units} units but got {values.shape[0]}")
        if values.shape[1] == 0:
            return
        values = values.to(self.device, torch.float16 if values.dtype == torch.float16 else torch.float32).contiguous()
        if not bool(values.abs().amax() < math.inf):  # NaN fails the comparison too
            raise BrodenError(NOT_FINITE)
        self._check_total(values.shape[1])
        if self._top is not None and self.count + values.shape[1] > self.exact_limit:
            self._start_sketch()
        if self._top is not None:
            values = self._harmonized(values)
        self.count += values.shape[1]
        if self._top is not None:
            self._add_exact(values)
        else:
            self._add_to_sketch(values.float())

    def merge(self, other: "TopQuantile") -> None:
        """Add everything ``other`` has counted (same units and quantile)."""
        if (other.num_units, other.quantile, other.stream_total) != (self.num_units, self.quantile, self.stream_total):
            raise BrodenError("cannot merge thresholds of different units, quantiles or streams")
        if self.stream_total is not None and self.count + other.count > self.stream_total:
            raise BrodenError(f"thresholds: more than the {self.stream_total} values announced (stream_total)")
        other = TopQuantile.from_state_dict(other.state_dict(), self.device)
        if self._top is not None and other._top is not None and self.count + other.count <= self.exact_limit:
            if other.count:  # an empty part neither adds values nor changes the top's dtype
                values = self._harmonized(other._top)
                self.count += other.count
                self._add_exact(values)
            return
        for side in (self, other):
            if side._top is not None:
                side._start_sketch()
        self.count += other.count
        assert self._bins is not None and other._bins is not None and other._hi is not None
        self._merge_bins(other._bins, other._hi, other._below)
        self._floor = torch.maximum(self._floor, other._floor)

    # -- read-out --------------------------------------------------------------------------------------------------
    @property
    def method(self) -> str:
        """How the thresholds were computed, for the results file."""
        level = f"level 1-{self.quantile:g}"
        if self._top is not None:
            return f"exact (numpy 'linear' quantile at {level})"
        text = f"sketch (log buckets, relative accuracy {SKETCH_ALPHA:g}, {level})"
        drifted = int(self._sketch_rank(self._position()[0])[1].sum()) if self.count else 0
        return text + (f"; {drifted} units approximate (stream drifted below its first {self.exact_limit} values)"
                       if drifted else "")

    def thresholds(self) -> torch.Tensor:
        """The ``(U,)`` float32 thresholds; needs at least one value."""
        if self.count == 0:
            raise BrodenError("no activations were counted, so no thresholds can be computed")
        j, frac = self._position()
        j1 = min(j + 1, self.count - 1)
        if self._top is not None:
            self._flush()
            # descending: ascending rank r sits at position count - 1 - r.
            lower = self._top[:, self.count - 1 - j].double()
            upper = self._top[:, self.count - 1 - j1].double()
        else:
            lower, upper = self._sketch_rank(j)[0], self._sketch_rank(j1)[0]
        return _lerp(lower, upper, frac).float()

    # -- persistence -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume: plain tensors and numbers (``torch.save``-able)."""
        self._flush()

        def cpu(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.cpu()

        return {
            "num_units": self.num_units,
            "quantile": self.quantile,
            "exact_limit": self.exact_limit,
            "stream_total": self.stream_total,
            "count": self.count,
            "top": cpu(None if self._top is None else self._top.contiguous()),  # not the whole store
            "bins": cpu(self._bins),
            "bins_hi": cpu(self._hi),
            "below": cpu(self._below),
            "floor": cpu(self._floor),
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: str | torch.device = "cpu") -> "TopQuantile":
        new = cls(state["num_units"], state["quantile"], exact_limit=state["exact_limit"], device=device,
                  stream_total=state.get("stream_total"))
        new.count = int(state["count"])

        def dev(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(new.device).clone()

        new._top, new._bins, new._hi = dev(state["top"]), dev(state["bins"]), dev(state["bins_hi"])
        new._below, new._floor = dev(state["below"]), dev(state["floor"])
        return new

    # -- exact top-k -----------------------------------------------------------------------------------------------
    def _position(self) -> tuple[int, float]:
        p = (self.count - 1) * (1.0 - self.quantile)
        j = math.floor(p)
        return j, p - j

    def _harmonized(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` (about to be counted) in the exact top's dtype: float16 while every value counted is float16
        (the scorer's activations are: half the memory for the same values and thresholds), else float32, to
        which the top is then promoted."""
        half = values.dtype == torch.float16 and (self.count == 0 or self._top.dtype == torch.float16)
        dtype = torch.float16 if half else torch.float32
        if self._top.dtype != dtype:
            self._top, self._store = self._top.to(dtype), None
            if self._pending is not None:
                self._pending = self._pending.to(dtype)
        return values.to(dtype)

    def _check_total(self, added: int) -> None:
        if self.stream_total is not None and self.count + added > self.stream_total:
            raise BrodenError(f"thresholds: more than the {self.stream_total} values announced (stream_total)")

    def _compiled_for(self, acts: torch.Tensor) -> tuple[ModuleType, np.ndarray] | None:
        """The compiled loops and the batch's bits, where the loop counts it exactly (see :meth:`add`)."""
        exact = (self.device.type == "cpu" and acts.dim() == 4 and acts.shape[1] == self.num_units
                 and self._top is not None and (self._top.dtype == torch.float16 or self.count == 0)
                 and self.count + acts[:, 0].numel() <= self.exact_limit)
        return compiled_loops.float16_maps(self.compiled and exact, acts)

    def _add_compiled(self, kernels: ModuleType, bits: np.ndarray) -> None:
        """Count a batch's float16 bits ``(B, U, S)`` with :func:`benchmark.kernels.keep_above`."""
        u, n = bits.shape[1], bits.shape[0] * bits.shape[2]
        self._harmonized(torch.empty(0, dtype=torch.float16))  # float16 from the first value on, as the tensors keep it
        if self._scratch is None or self._scratch.shape[1] < n:
            self._scratch = np.empty((u, n), np.uint16)
        full = self._top.shape[1] == self._capacity
        floor = self._top[:, -1].contiguous() if full else torch.zeros(u, dtype=torch.float16)
        width = kernels.keep_above(bits, floor.numpy().view(np.uint16), full, self._scratch, np.empty(u, np.int64))
        if width < 0:
            raise BrodenError(NOT_FINITE)
        self._check_total(n)
        self.count += n
        if width:
            self._queue(torch.from_numpy(self._scratch[:, :width]).view(torch.float16))

    def _add_exact(self, values: torch.Tensor) -> None:
        assert self._top is not None
        if self._top.shape[1] == self._capacity:
            # Full: the K-th largest only grows, so a value not above it can never re-enter the top K.
            keep = values > self._top[:, -1:]
            kept = keep.sum(dim=1)
            width = int(kept.max())
            if width == 0:
                return
            if width < values.shape[1]:
                # each unit's kept values moved to the front of a row of -inf (only a merge reads them, in any
                # order; -inf never enters a full top)
                unit, column = keep.nonzero(as_tuple=True)  # unit by unit, in order
                slot = torch.arange(unit.numel(), device=unit.device) - (kept.cumsum(0) - kept)[unit]
                compact = values.new_full((values.shape[0], width), -math.inf)
                compact[unit, slot] = values[unit, column]
                values = compact
        self._queue(values)

    def _queue(self, values: torch.Tensor) -> None:
        """Values that may enter the top, pending until the buffer is full (merged at once when it cannot hold
        them)."""
        limit = max(self._capacity // 2, 1024)  # values pending before a merge
        size, width = self._pending_size, values.shape[1]
        if size + width > limit:
            self._flush()
            size = 0
        if width > limit:  # more than the buffer holds: merged at once
            self._merge(values)
            return
        if self._pending is None or self._pending.shape[1] < size + width:
            grown = values.new_empty(self.num_units, min(limit, max(size + width, 2 * size)))
            if size:
                grown[:, :size] = self._pending[:, :size]
            self._pending = grown
        self._pending[:, size : size + width] = values
        self._pending_size = size + width

    def release_pending(self) -> None:
        """Merge the values not merged yet and free their buffer, for a stream that is complete but kept (its
        state, the thresholds and later adds are unchanged; an add allocates the buffer again)."""
        self._flush()
        self._pending = None

    def _flush(self) -> None:
        """Merge the pending values into the top."""
        if self._pending_size and self._top is not None:
            self._merge(None)

    def _merge(self, extra: torch.Tensor | None) -> None:
        """Keep the top ``K`` of the kept values, the pending ones and ``extra``, in the store.

        :data:`FLUSH_UNITS` units at a time, so that the temporaries (the concatenation, ``topk``'s int64
        indices) stay a few MB however large the top (at full Broden scale, all units at once took 190 MB), and
        into buffers that are reused: a full top is rewritten in place and the pending buffer refilled. Fresh
        tensors of ever-changing sizes per batch and per merge left the tuned allocator's heap full of holes
        (the thresholds of 63,305 x 512 x 7 x 7 values grew the process by 440 MB, for 32 MB of values)."""
        parts = [] if extra is None else [extra]
        size = self._pending_size
        width = min(self._top.shape[1] + size + sum(p.shape[1] for p in parts), self._capacity)
        store = self._store
        if store is None or store.shape[1] < width or store.dtype != self._top.dtype:
            store = self._top.new_empty(self.num_units, min(self._capacity, max(width, 2 * self._top.shape[1])))
        for u in range(0, self.num_units, FLUSH_UNITS):
            rows = slice(u, u + FLUSH_UNITS)
            pending = [self._pending[rows, :size]] if size else []
            merged = torch.cat([self._top[rows], *pending, *(p[rows] for p in parts)], dim=1)
            store[rows, :width] = torch.topk(merged, width, dim=1, sorted=True).values
        self._store, self._top, self._pending_size = store, store[:, :width], 0

    # -- sketch ------------------------------------------------------------------------------------------------------
    def _start_sketch(self) -> None:
        """Seed the sketch with the exact top values; the rest seen so far only count as "below"."""
        self._flush()
        assert self._top is not None
        top, self._top = self._top.float(), None  # buckets from float32 logarithms, whatever the top's dtype
        self._store = self._pending = None
        self._bins = torch.zeros(self.num_units, SKETCH_MAX_BINS, dtype=torch.int64, device=self.device)
        self._hi = torch.full((self.num_units,), _NO_BUCKET, dtype=torch.int64, device=self.device)
        self._below = torch.full((self.num_units,), self.count - top.shape[1], dtype=torch.int64, device=self.device)
        # The "below" values are at most the seed's smallest: ranks that reach its bucket are no longer resolved.
        self._floor = _bucket_ids(top[:, -1]) if top.shape[1] else self._hi.clone()
        if top.shape[1]:
            self._add_to_sketch(top)

    def _add_to_sketch(self, values: torch.Tensor) -> None:
        assert self._bins is not None and self._hi is not None and self._below is not None
        ids = _bucket_ids(values)
        top = torch.maximum(self._hi, ids.max(dim=1).values)
        self._bins, spilled = _shift_window(self._bins, top - self._hi)
        self._hi = top
        columns = ids - (top - SKETCH_MAX_BINS + 1)[:, None]
        inside = columns >= 0
        self._below += spilled + (~inside).sum(dim=1)
        self._bins.scatter_add_(1, columns.clamp_min(0), inside.long())

    def _merge_bins(self, bins: torch.Tensor, hi: torch.Tensor, below: torch.Tensor) -> None:
        assert self._bins is not None and self._hi is not None and self._below is not None
        top = torch.maximum(self._hi, hi)
        mine, spilled_mine = _shift_window(self._bins, top - self._hi)
        theirs, spilled_theirs = _shift_window(bins, top - hi)
        self._bins, self._hi = mine + theirs, top
        self._below = self._below + spilled_mine + spilled_theirs + below

    def _sketch_rank(self, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per unit, the value of the bucket holding ascending rank ``rank`` (0-based), found by counting from the
        top, and whether it is unresolved (it reaches the "below" values; the value is then that of the floor
        bucket, an upper bound to within the accuracy)."""
        assert self._bins is not None and self._hi is not None and self._floor is not None
        from_top = torch.cumsum(self._bins.flip(1), dim=1)
        target = torch.full((self.num_units, 1), self.count - 1 - rank, dtype=torch.int64, device=self.device)
        col = SKETCH_MAX_BINS - 1 - torch.searchsorted(from_top, target, right=True).squeeze(1)
        ids = self._hi - SKETCH_MAX_BINS + 1 + col
        unresolved = (ids < self._floor) | (col < 0)  # col < 0: past every bucket, into the spilled values
        ids = torch.where(unresolved, torch.maximum(self._floor, self._hi - SKETCH_MAX_BINS + 1), ids).double()
        mag = 2 * torch.exp((ids.abs() + _KEY_OFFSET) * _LOG_GAMMA) / (_GAMMA + 1)
        return torch.where(ids == 0, torch.zeros_like(mag), torch.sign(ids) * mag), unresolved


def sketch_switch_row(num_rows: int, values_per_row: int, batch_size: int, exact_limit: int) -> int | None:
    """The row at which one stream of ``num_rows`` rows, added in batches of ``batch_size`` rows from row 0 with
    ``values_per_row`` values per unit each, switches from exact to sketch (the first row of the batch that takes
    it past ``exact_limit`` values); None when it stays exact."""
    if num_rows * values_per_row <= exact_limit:
        return None
    return batch_size * (exact_limit // (batch_size * values_per_row))


class ShardQuantile:
    """The :class:`TopQuantile` of a contiguous part of a run's rows, mergeable into exactly the state that one
    stream over all the rows reaches.

    Exact mode merges exactly by itself; the sketch does not, because one stream seeds its sketch with the exact top
    of the rows before its switch (:func:`sketch_switch_row`) and counts the rest of them as "below". So a shard
    keeps its rows before ``switch_row`` in an exact TopQuantile (``before``: at most ``exact_limit`` values, it
    never switches) and its rows from ``switch_row`` on in one that is a sketch from the start (``after``). Shards
    merge part by part, and :meth:`result` seeds the sketch from the merged ``before`` and adds the merged
    ``after``'s bucket counts: the stream's state, bucket for bucket. With ``switch_row=None`` it is one plain
    stream (``before`` switches by itself when it must): a single process.
    """

    def __init__(self, num_units: int, quantile: float, *, exact_limit: int, switch_row: int | None,
                 device: str | torch.device = "cpu", stream_total: int | None = None) -> None:
        """``stream_total``: the whole run's values (all shards), when known and at most ``exact_limit``."""
        if stream_total is not None and switch_row is not None:
            raise BrodenError("a run that switches to the sketch has no stream_total within exact_limit")
        self.switch_row = switch_row
        self.before = TopQuantile(num_units, quantile, exact_limit=exact_limit, device=device,
                                  stream_total=stream_total)
        self.after = None if switch_row is None else TopQuantile(
            num_units, quantile, exact_limit=exact_limit, device=device, sketch=True)

    @property
    def compiled(self) -> bool:
        """Whether its exact part compacts float16 maps with the compiled loop (:meth:`TopQuantile.add`)."""
        return self.before.compiled

    @compiled.setter
    def compiled(self, value: bool) -> None:
        self.before.compiled = bool(value)

    def add(self, acts: torch.Tensor, first_row: int) -> None:
        """``acts`` (B, U, h, w) for rows ``first_row .. first_row + B - 1`` of the run's order."""
        if self.after is None:
            self.before.add(acts)
            return
        cut = min(max(self.switch_row - first_row, 0), acts.shape[0])
        if cut:
            self.before.add(acts[:cut])
        if cut < acts.shape[0]:
            self.after.add(acts[cut:])

    def release_pending(self) -> None:
        """Merge the values not merged yet and free their buffer (as :meth:`TopQuantile.release_pending`)."""
        for part in (self.before, self.after):
            if part is not None:
                part.release_pending()

    def merge(self, other: "ShardQuantile") -> None:
        """Add ``other``, a part of the same run (same switch row) over other rows."""
        if other.switch_row != self.switch_row:
            raise BrodenError("cannot merge thresholds of runs that switch to the sketch at different rows")
        self.before.merge(other.before)
        if self.after is not None and other.after is not None:
            self.after.merge(other.after)

    def result(self) -> TopQuantile:
        """The whole stream: ``before`` itself when no sketch follows it (a single process: no copy of its top,
        16 MB at full Broden scale), else a copy of it with ``after`` merged in."""
        if self.after is None:
            return self.before
        out = TopQuantile.from_state_dict(self.before.state_dict(), self.before.device)
        if self.after.count:
            out.merge(self.after)
        return out

    def state_dict(self) -> dict:
        return {"switch_row": self.switch_row, "before": self.before.state_dict(),
                "after": None if self.after is None else self.after.state_dict()}

    @classmethod
    def from_state_dict(cls, state: dict, device: str | torch.device = "cpu") -> "ShardQuantile":
        new = cls.__new__(cls)
        new.switch_row = state["switch_row"]
        new.before = TopQuantile.from_state_dict(state["before"], device)
        new.after = None if state["after"] is None else TopQuantile.from_state_dict(state["after"], device)
        return new


def _shift_window(bins: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each unit's bucket window up by ``shift`` (U,) buckets; returns the new counts and, per unit, the count
    that fell below the window."""
    width = bins.shape[1]
    if not bool(shift.any()):
        return bins, torch.zeros_like(shift)
    source = torch.arange(width, device=bins.device)[None, :] + shift[:, None]
    moved = torch.where(source < width, bins.gather(1, source.clamp(max=width - 1)), torch.zeros_like(bins))
    kept = moved.sum(dim=1)
    return moved, bins.sum(dim=1) - kept


def _bucket_ids(values: torch.Tensor) -> torch.Tensor:
    """Sketch bucket id of each value: ``sign(x) * (ceil(log_gamma |x|) - offset)``, 0 for ``|x| <= 1e-6``.

    float32 logs may put a value within ~1e-7 of a bucket edge in the neighbouring bucket, which still reads back
    within the relative accuracy (a bucket's representative is within ``a`` of both its edges).
    """
    mag = values.abs()
    key = torch.ceil(torch.log(mag.clamp_min(SKETCH_MIN_MAGNITUDE)) * (1 / _LOG_GAMMA)) - _KEY_OFFSET
    return torch.where(mag > SKETCH_MIN_MAGNITUDE, torch.copysign(key, values), 0.0).long()


def _lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """numpy's interpolation formula (``_lerp`` in ``numpy.lib._function_base_impl``), so exact mode matches it."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t
