"""Fetch the prebuilt Broden release, verify it, convert it to a Hugging Face dataset and validate it.

Under DEST this writes downloads/broden1_<S>.zip (the archive), broden1_<S>/ (the release in its original layout)
and broden1_<S>-hf/ (the dataset that 'broden info', 'broden validate' and 'benchmark score' read). The original
host (netdissect.csail.mit.edu) is tried first, then the Wayback Machine copy; --url replaces that list.

Downloads resume after an interruption (run the same command again), failures are retried with backoff, and the
result is checked against the known checksum where one exists (the 224 zip's MD5); the sha256 of every download is
printed so you can pin it with --sha256. Running the command again after success does nothing.

examples:
  broden download                                    # broden1_224 into ./broden-data
  broden download --size 227 --dest /data/broden     # the AlexNet size, elsewhere
  broden download --url file:///tmp/broden1_224.zip  # a zip you fetched by other means
  broden download --url https://mirror.example.org/broden1_224.zip --sha256 <64 hex digits>
  broden download --hub my-org/broden1_224 --revision v1  # a copy on the Hugging Face Hub, into ./broden-data/broden1_224

--hub REPO_ID fetches a Broden dataset repository from the Hugging Face Hub instead (a mirror for when the original
host is down) with huggingface_hub's snapshot_download (resumable, cached in HF_HUB_CACHE, --revision pins a branch,
tag or commit), copies it to DEST/NAME, records the repo and the commit in its broden.json, and validates it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broden.dataset import IMAGE_SIZES
from broden.download.fetch import DEADLINE
from broden.download.releases import DEFAULT_DEST
from broden.errors import BrodenError
from broden.utils.outputs import claim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub", metavar="REPO_ID", help="fetch the dataset repo ORG/NAME from the Hugging Face Hub")
    parser.add_argument("--revision", metavar="REV", help="with --hub: branch, tag or commit (default: main)")
    parser.add_argument("--size", type=int, choices=IMAGE_SIZES, default=224,
                        help="image size of the release: 224 for VGG/ResNet/GoogLeNet, 227 for AlexNet "
                             "(default: %(default)s)")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help="directory for the archive, the extracted release and the dataset "
                             "(default: %(default)s)")
    parser.add_argument("--url", action="append", metavar="URL",
                        help="where to fetch the zip (http(s)://, file:// or a local path); repeat to give "
                             "fallbacks tried in order; replaces the known URLs")
    parser.add_argument("--sha256", metavar="HEX", help="expected sha256 of the zip (replaces known checksums)")
    parser.add_argument("--md5", metavar="HEX", help="expected md5 of the zip (replaces known checksums)")
    parser.add_argument("--force", action="store_true",
                        help="download, extract, convert and validate again even if finished outputs exist; "
                             "each is replaced only once its new version is complete")
    parser.add_argument("--retries", type=int, default=5, metavar="N",
                        help="retries per URL after a failure without progress (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="give up on a connection silent for this long, then retry (default: %(default)s)")
    parser.add_argument("--deadline", type=float, default=DEADLINE, metavar="SECONDS",
                        help="give up on the whole download after this long, every URL and retry included "
                             "(default: %(default)s); a transfer slower than 1 kB/s for 30 s is retried")


def run(args: argparse.Namespace) -> int:
    from broden.download.releases import download_from_hub, download_release

    if args.revision and not args.hub:
        raise BrodenError("--revision: only with --hub REPO_ID")
    # DEST is a container: the command writes only its own named entries in it (downloads/, broden1_<S>/, ...),
    # so any existing directory is accepted; the lock and the removal of stale temporaries apply as everywhere
    with claim(args.dest, "broden download", own=lambda _dest: True, clean_inside=True) as output:
        if args.hub:
            print(download_from_hub(args.hub, output.path, revision=args.revision, force=args.force))
            return 0
        dataset = download_release(
            args.size,
            output.path,
            urls=args.url,
            sha256=args.sha256,
            md5=args.md5,
            force=args.force,
            retries=args.retries,
            timeout=args.timeout,
            deadline=args.deadline,
        )
    print(dataset)
    return 0
