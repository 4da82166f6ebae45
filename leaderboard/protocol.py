"""The leaderboard protocol: which settings and which datasets make results comparable, and how an entry is judged.

An entry is ranked only when it was scored the way the paper scored networks (top 0.5% threshold, IoU > 0.04, all
six Broden categories, the paper's category gate) on a dataset the leaderboard knows. Anything else is still a valid
submission, shown as "other protocol" and not ranked, so results on other data or settings stay visible without
being mistaken for comparable ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchmark.protocol import CATEGORY_ORDER as CATEGORIES
from benchmark.protocol import DEFAULT_COMPAT as COMPAT
from benchmark.protocol import IOU_THRESHOLD, QUANTILE
from broden.download.releases import RELEASES, Release

LEADERBOARD = "leaderboard"
OTHER_PROTOCOL = "other protocol"


@dataclass(frozen=True)
class KnownDataset:
    """A dataset the leaderboard accepts for ranked entries."""

    name: str
    fingerprint: str | None  # None: an original release, known by name only (imported / reported results)
    description: str
    ranked: bool = True  # False: recognised, but too small for its counts to compare with full Broden


# Measured entries must name their data by content fingerprint. Append the fingerprint of each published Broden
# conversion here when it is released (``python -m leaderboard.protocol DATASET_DIR`` prints a dataset's fingerprint).
# The embedded sample is recognised so demo results validate and display, but it is a few hundred synthetic images:
# its counts are not comparable with full Broden, so it is not ranked. A test keeps its fingerprint in step with
# ``broden.sample.write_sample``'s defaults.
KNOWN_FINGERPRINTS: tuple[KnownDataset, ...] = (
    KnownDataset(
        "broden-sample",
        "sha256:04515d909d140fc9e045c464140eb78fc2485a02942645c76bd135e2165aa2e5",
        "the embedded sample dataset, 'broden sample' with default options",
        ranked=False,
    ),
)

# Imported and reported entries come from the authors' 2017 release, computed on the original Broden zips, which
# have no content fingerprint: they name the release instead.
ORIGINAL_RELEASES: tuple[KnownDataset, ...] = (
    KnownDataset("broden1_224", None, "original Broden release, 224x224 images (VGG, GoogLeNet, ResNet)"),
    KnownDataset("broden1_227", None, "original Broden release, 227x227 images (AlexNet / CaffeNet)"),
)


#: Versions of ``broden.legacy.convert_legacy`` whose output is trusted: a measured entry on data converted from a
#: known release archive by one of these is ranked. Add a version here once its conversion of a release is checked.
KNOWN_CONVERTERS: tuple[tuple[str, str], ...] = (("broden.legacy", "0.1.0"),)


def known_archive(provenance: dict[str, Any] | None) -> tuple[Release, str] | None:
    """The prebuilt release (``broden.download.releases.RELEASES``) whose archive a dataset's provenance names, by
    file name and a checksum the release table knows, with the checksum kind that matched; None when unknown."""
    archive = (provenance or {}).get("archive") or {}
    for release in RELEASES.values():
        if archive.get("name") != release.filename:
            continue
        for kind in ("sha256", "md5"):
            if getattr(release, kind) is not None and archive.get(kind) == getattr(release, kind):
                return release, kind
    return None


def provenance_key(dataset: dict[str, Any]) -> tuple[str, str, str] | None:
    """(archive name, its sha256, converter version) for data converted by a known converter from a known release
    archive: the data every such entry should share, so the first fingerprint seen for it is the one to expect."""
    provenance = dataset.get("provenance") or {}
    converter = provenance.get("converter") or {}
    if known_archive(provenance) is None or (converter.get("name"), converter.get("version")) not in KNOWN_CONVERTERS:
        return None
    return provenance["archive"]["name"], provenance["archive"]["sha256"], converter["version"]


def known_dataset(dataset: dict[str, Any], kind: str) -> KnownDataset | None:
    """The known dataset an entry's ``dataset`` object refers to, or None.

    A measured entry's data is known by its fingerprint (:data:`KNOWN_FINGERPRINTS`) or, failing that, by its
    provenance: converted by a :data:`KNOWN_CONVERTERS` version from a release archive whose checksum the release
    table knows (see :func:`provenance_key`).
    """
    if kind == "measured":
        listed = next((d for d in KNOWN_FINGERPRINTS if d.fingerprint == dataset.get("fingerprint")), None)
        key = provenance_key(dataset)
        if listed is not None or key is None:
            return listed
        return KnownDataset(key[0].removesuffix(".zip"), dataset.get("fingerprint"),
                            f"converted from the release archive {key[0]} by broden {key[2]}")
    return next((d for d in ORIGINAL_RELEASES if d.name == dataset.get("name")), None)


def protocol_deviations(results: dict[str, Any]) -> list[str]:
    """Why a schema-valid entry is not on the leaderboard protocol (empty: it is)."""
    proto = results["protocol"]
    out = []
    if not math.isclose(proto["quantile"], QUANTILE, rel_tol=1e-9):
        out.append(f"protocol.quantile is {proto['quantile']}, the leaderboard uses {QUANTILE}")
    if not math.isclose(proto["iou_threshold"], IOU_THRESHOLD, rel_tol=1e-9):
        out.append(f"protocol.iou_threshold is {proto['iou_threshold']}, the leaderboard uses {IOU_THRESHOLD}")
    if sorted(proto["categories"]) != sorted(CATEGORIES):
        out.append(f"protocol.categories is {proto['categories']}, the leaderboard uses all of {list(CATEGORIES)}")
    if proto["compat"] != COMPAT:
        out.append(f"protocol.compat is {proto['compat']!r}, the leaderboard uses {COMPAT!r}")
    kind = results["provenance"]["kind"]
    known = known_dataset(results["dataset"], kind)
    if known is not None and not known.ranked:
        out.append(f"dataset {known.name} ({known.description}) is not ranked: counts on it are not comparable")
    if known is None:
        if kind == "measured":
            out.append(
                f"dataset.fingerprint {results['dataset']['fingerprint']} is not a known Broden dataset "
                f"(known: {', '.join(d.name for d in KNOWN_FINGERPRINTS) or 'none yet'}), and dataset.provenance "
                "names no release archive with a known checksum converted by a known converter version"
            )
        else:
            out.append(
                f"dataset.name {results['dataset']['name']!r} is not an original Broden release "
                f"({', '.join(d.name for d in ORIGINAL_RELEASES)})"
            )
    return out


if __name__ == "__main__":
    import sys

    from broden.dataset import load

    print(load(sys.argv[1]).compute_fingerprint())
