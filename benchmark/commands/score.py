"""Dissect a model's layers on a Broden dataset and write OUT/results.json (Network Dissection, Bau et al. 2017).

MODEL is a model spec:
  FILE.py                      a model file defining build_model() (see examples/README.md)
  torchvision:NAME[:WEIGHTS]   a torchvision classification model; WEIGHTS an enum name (IMAGENET1K_V1, ...;
                               default DEFAULT) or none (random initialisation from --seed)
  timm:NAME[:none]             a timm model, pretrained through timm's hub cache, or random with :none
  hf:ORG/NAME[@REV]            a transformers vision model (AutoModel / AutoModelForImageClassification) from the
  hf:/local/dir                Hugging Face cache, or from a folder saved with save_pretrained
  FILE.pt2                     a torch.export program (TorchScript cannot be tapped: the error says what works)
  FILE.onnx                    an ONNX model (converted with onnx2torch)
Weights are downloaded once by their library (offline, an error says what to do); --weights FILE loads a state
dict into any spec instead (its sha256 is recorded).

Preprocessing: the whole image is resized to the model's input size (never cropped, so activations stay aligned
with the masks; a config's centre crop is recorded as not applied) and normalised with the model's own mean/std
(weights enum, timm data config, image processor); else ImageNet mean/std at the dataset's image size. The results
record every value and where it came from; a model whose declared statistics differ from those used is warned about.

A model file may also define:
  LAYERS         dotted layer names to dissect, e.g. ["layer4"] or ["features.18"] (--layers overrides)
  preprocess     PIL RGB image -> float tensor (3, H, W), replacing the default above (recorded either way)
  NAME           display name; METADATA: dict with architecture, training_data, paper, weights_url,
                 weights_sha256; EXTRA_TOKENS: class/register tokens to drop from transformer outputs

Layers: any dotted module name (list them with 'benchmark layers MODEL'); several layers are dissected in one
forward pass. (B, C, H, W) outputs are used as is, transformer tokens (B, N, C) are folded into a square grid
(N = extra + s*s), a tuple output gives its first tensor; (B, C) vectors cannot be dissected.

The run makes one forward pass (pass 1: thresholds, top images, float16 activation cache in OUT/cache/ while
it fits --cache-budget) and one tally pass over the masks (pass 2). It checkpoints into OUT/cache/ as it goes:
run the same command again after an interruption to resume; a finished run is not redone unless --force.
Outputs: OUT/results.json (schema broden-results/2) and OUT/top_maps.npz (each unit's top images' maps).
--json prints a machine-readable summary on stdout instead of the text lines.

Intervals: the counts are also kept per image fold (16 folds by the md5 split hash), and a seeded bootstrap over
the folds (--bootstrap replicates, --seed) gives 95% intervals for each unit's IoU and for detectors and unique
detectors. Held-out protocol: beside the standard numbers, each label chosen on the train split with its IoU
measured on val. Baseline: --rotate ALPHA multiplies every layer's activations along the unit axis by a random
rotation (--seed) to the power ALPHA (0: none, 1: a full random rotation), as in the paper's section 3.2.

Bring your own activations: --activations acts.npz holding 'activations' (N, units, h, w) and 'image'
(the N dataset ids); optional 'layer' (name). Only those rows are scored.

Several processes, GPUs or nodes: launch the same command with torchrun (torchrun --nproc-per-node N -m benchmark
score ...; nccl and one GPU per process with --device cuda, gloo on CPU), or pass --nproc N to start N processes
on this machine. Each process reads and scores its shard of the rows; the results are identical to one
process's. A relaunch with the same number of processes resumes; see docs/distributed.md.

examples:
  benchmark score examples/mobilenet_v2.py --dataset broden-sample
  benchmark score torchvision:mobilenet_v2:IMAGENET1K_V1 --dataset broden-sample
  benchmark score torchvision:resnet18 --layers layer3,layer4 --dataset broden1_224
  benchmark score timm:convnext_tiny --dataset broden1_224 --json
  benchmark score hf:google/vit-base-patch16-224 --dataset broden1_224
  benchmark score torchvision:resnet18:none --weights my_resnet18.pth --dataset broden1_224
  benchmark score --activations acts.npz --dataset broden1_224 --out results/acts
  benchmark score examples/mobilenet_v2.py --dataset broden-sample --rotate 1 --seed 0 --out results/rotated
  benchmark score torchvision:resnet50 --dataset broden1_224 --nproc 4
  torchrun --nproc-per-node 8 -m benchmark score my_model.py --dataset broden1_224 --device cuda
  benchmark score examples/mobilenet_v2.py --dataset hf://my-org/broden1_224 --streaming
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from benchmark import protocol
from broden.download.releases import DEFAULT_DEST, ReleasePaths, get_release
from broden.errors import BrodenError
from broden.utils.cli import check_number, split_list
from broden.utils.filenames import safe_name
from broden.utils.outputs import Claim, claim
from broden.utils.text import clean

# the dataset `broden download` writes by default, so the two commands work together without flags
DEFAULT_DATASET = str(ReleasePaths(DEFAULT_DEST, get_release(224)).dataset)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="model spec: FILE.py, torchvision:NAME[:WEIGHTS], timm:NAME[:none], hf:ORG/NAME, "
                             "hf:/dir, FILE.pt2, FILE.onnx")
    parser.add_argument("--layers", help="comma-separated dotted layer names (default: the model's LAYERS)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, metavar="PATH",
                        help=f"Broden dataset directory, or a Hub dataset hf://ORG/NAME[@REV] (default: "
                             f"{DEFAULT_DATASET})")
    parser.add_argument("--streaming", action="store_true",
                        help="read rows from the dataset's parquet shards as they are used (for hf://, over HTTP, "
                             "without downloading the shards) instead of through an Arrow copy; same results")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: results/<model name>)")
    parser.add_argument("--weights", metavar="FILE", help="state dict loaded into the model instead of its own weights")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of random initialisations (:none specs), the bootstrap and --rotate (default: 0)")
    parser.add_argument("--device", default="auto",
                        help="torch device: auto (CUDA when available), cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--amp", action="store_true",
                        help="mixed-precision forward pass (changes the activations; recorded; default: off)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    parser.add_argument("--quantile", type=float, default=protocol.QUANTILE,
                        help=f"top fraction of each unit's activations kept as its active region "
                             f"(default: {protocol.QUANTILE})")
    parser.add_argument("--iou-threshold", type=float, default=protocol.IOU_THRESHOLD,
                        help=f"a unit is a detector when its IoU is above this (default: {protocol.IOU_THRESHOLD})")
    parser.add_argument("--categories", help="comma-separated categories (default: all of the dataset's)")
    parser.add_argument("--compat", choices=protocol.COMPAT_MODES, default=protocol.DEFAULT_COMPAT,
                        help="netdissect: the paper's category gate (default); netdissect-lite: Lite's narrower gate")
    parser.add_argument("--top-k", type=int, default=10, help="top images kept per unit (default: 10)")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader worker processes decoding images and masks (default: from the CPUs this "
                             "process may use, with --threads: together at most one per CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: the CPUs this process may use, less the workers)")
    parser.add_argument("--cache-budget", type=float, default=8.0, metavar="GB",
                        help="disk for the float16 activation cache; above it pass 2 recomputes the forward (default: 8)")
    parser.add_argument("--activations", metavar="NPZ", help="score precomputed activations instead of a model")
    parser.add_argument("--name", help="display name (default: the model's NAME or file name)")
    parser.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                        help="save resumable state this often (default: 60)")
    parser.add_argument("--keep-cache", action="store_true", help="keep OUT/cache/ after a successful run")
    parser.add_argument("--force", action="store_true", help="redo a finished run, replacing OUT/results.json when done")
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no text lines (errors and warnings still)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary on stdout: results path, skipped, model, per layer units, "
                             "detectors and unique concepts")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap replicates for the 95%% intervals; 0: no intervals (default: 1000)")
    parser.add_argument("--rotate", type=float, metavar="ALPHA",
                        help="rotate the units by a random rotation to the power ALPHA in [0, 1] (baseline; seed: --seed)")
    parser.add_argument("--nproc", type=int, metavar="N",
                        help="run as N processes on this machine (torch.distributed.run, like torchrun "
                             "--nproc-per-node N); results identical to one process")
    parser.add_argument("--dist-timeout", type=float, metavar="SECONDS",
                        help="with several processes: how long one waits for the others at a merge before the run "
                             "stops with an error; a crashed process stops the others at once (default: PyTorch's "
                             "own, 30 minutes)")


def _own(out: Path) -> bool:
    """A score output: its finished results or the resumable state of a run (checkpoint directory with its key)."""
    from benchmark.checkpoint import MANIFEST_FILE
    from benchmark.scorer import CACHE_DIR, RESULTS_FILE

    return (out / RESULTS_FILE).is_file() or (out / CACHE_DIR / MANIFEST_FILE).is_file()


@contextlib.contextmanager
def _claim(out: str | Path, force: bool, inputs: list[Path]) -> Iterator[Claim | None]:
    """The output policy for a score directory, which is updated in place (so stale temporaries inside go too).

    In a distributed run rank 0 claims the output for every rank (one lock, one clean-up, one marker); the other
    ranks yield None and only write inside it after the run's first collective, which rank 0 reaches holding the
    claim."""
    from benchmark.distributed import current

    if current().rank != 0:
        yield None
        return
    with claim(out, "benchmark score", force=force, inputs=inputs, own=_own, clean_inside=True) as output:
        yield output


def run(args: argparse.Namespace) -> int:
    import os

    from benchmark import distributed

    world = os.environ.get("WORLD_SIZE")
    if args.nproc is not None and world is None:  # start the launcher; its processes come back here
        return distributed.launch(args.nproc, ["benchmark", "score", *args.raw_args])
    if args.nproc is not None and int(world) != args.nproc:
        raise BrodenError(f"--nproc {args.nproc} inside a launcher that started {world} processes; drop --nproc "
                          "when launching with torchrun")
    try:
        device = distributed.rank_device(args.device)
        timeout = distributed.DEFAULT_TIMEOUT_S if args.dist_timeout is None else args.dist_timeout
        group = distributed.init(device, timeout)  # the scorer finds it (distributed.current)
        code = _score(args, device)
    except (BrodenError, KeyboardInterrupt) as exc:
        if distributed.claim_report():
            raise  # printed once, by the first process that failed
        raise SystemExit(exc.exit_code if isinstance(exc, BrodenError) else 130) from None
    if group.distributed:
        # Every rank has passed the scorer's final barrier with every output written. Tearing down gloo's worker
        # threads (destroy_process_group, or the interpreter's finalization) aborts a rank now and then
        # ("terminate called without an active exception", SIGABRT), which would fail a finished run; a launched
        # rank therefore ends here, its streams flushed, and the process exit releases the group.
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    group.close()
    return code


def _score(args: argparse.Namespace, device: str) -> int:
    from benchmark.api import Results, score
    from benchmark.runtime import tune_allocator
    from benchmark.scorer import Settings, score_activations
    from broden.dataset import load

    tune_allocator()  # first thing: every later allocation of the process benefits
    if (args.model is None) == (args.activations is None):
        raise BrodenError("give either MODEL (a model spec such as a .py file or torchvision:NAME) or --activations NPZ")
    check_number("--cache-budget", args.cache_budget, minimum=0)  # before it becomes a byte count
    settings = {
        "quantile": args.quantile, "iou_threshold": args.iou_threshold, "categories": split_list(args.categories),
        "compat": args.compat, "top_k": args.top_k, "batch_size": args.batch_size, "device": device,
        "amp": args.amp, "quiet": args.quiet, "cache_budget_bytes": int(args.cache_budget * 1e9),
        "keep_cache": args.keep_cache, "force": args.force, "checkpoint_every_s": args.checkpoint_every,
        "seed": args.seed, "bootstrap": args.bootstrap, "rotate": args.rotate,
        "workers": args.workers, "threads": args.threads,
    }
    Settings(**settings).check()
    if not Path(args.dataset).exists() and not args.dataset.startswith("hf://"):
        raise BrodenError(f"{args.dataset}: dataset not found; pass --dataset PATH or hf://ORG/NAME (make one with "
                          "'broden sample' or 'broden download')")
    dataset = load(args.dataset, streaming=args.streaming)
    inputs = [dataset.path] + ([Path(args.activations)] if args.activations else [])
    if args.activations:
        from benchmark.activations import SuppliedActivations

        if args.layers:
            raise BrodenError("--layers does not apply to --activations (the npz holds one layer)")
        if args.weights:
            raise BrodenError("--weights does not apply to --activations (no model is run)")
        supplied = SuppliedActivations(args.activations, dataset)
        name = args.name or Path(args.activations).stem
        out = Path(args.out or Path("results") / safe_name(name, "model")).resolve()
        with _claim(out, args.force, inputs) as output:
            outcome = score_activations(supplied, dataset, out, Settings(**settings), name=name)
            if output is not None:
                output.mark()
        results = Results(outcome.results, outcome.path, skipped=outcome.skipped)
    else:
        from benchmark.models.loader import load_model

        model = load_model(args.model, weights_file=args.weights, seed=args.seed)
        if args.name:
            model.name = args.name
        out = Path(args.out or Path("results") / safe_name(model.name, "model")).resolve()
        with _claim(out, args.force, inputs) as output:
            results = score(model, dataset, layers=split_list(args.layers), out=out, **settings)
            if output is not None:
                output.mark()
    if results.data is None:  # another process of the run reports
        return 0
    if args.json:
        print(json.dumps(summary_record(results), indent=1))
    elif not args.quiet:
        if results.skipped:
            print(f"already scored: {results.path} (same model, layers, settings and dataset); pass --force to redo it")
            return 0
        for layer in results.data["layers"]:
            s = layer["summary"]
            print(f"{clean(layer['name'])}: {s['detectors']['all']}/{s['units']} detectors, "
                  f"{s['unique_per_category']['all']} unique concepts (per-category rule)")
        print(f"wrote {results.path}")
    return 0


def summary_record(results) -> dict:
    """The ``--json`` summary: where the results are, whether the run was skipped, and per layer the counts."""
    data = results.data
    return {
        "results": str(results.path),
        "skipped": results.skipped,
        "name": data["name"],
        "model": {k: data["model"].get(k) for k in ("source", "weights_sha256", "weights")},
        "dataset": {k: data["dataset"].get(k) for k in ("name", "fingerprint", "num_images")},
        "device": data.get("environment", {}).get("device"),
        "layers": [
            {"name": layer["name"], "units": layer["summary"]["units"], "shape": layer.get("shape"),
             "detectors": layer["summary"]["detectors"], "unique_per_category": layer["summary"]["unique_per_category"],
             "unique_top_label": layer["summary"].get("unique_top_label")}
            for layer in data["layers"]
        ],
    }
