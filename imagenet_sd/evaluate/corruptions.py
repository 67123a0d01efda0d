"""Evaluation sets in ImageNet-C's layout <corruption>/<severity>/<wnid>/ (ImageNet-C, ImageNet-C-bar,
ImageNet-3DCC): their folders, the means over severities and corruptions, and ImageNet-C's mCE.

mCE (Hendrycks and Dietterich, ICLR 2019, https://arxiv.org/abs/1903.12261): per corruption c, the corruption
error CE_c = sum_s E_s,c / sum_s E_s,c(AlexNet) over severities 1..5 (top-1 errors), and mCE the mean of CE_c
over the 15 standard corruptions, in percent (AlexNet = 100). AlexNet's errors, averaged over severities
(which leaves the ratio unchanged), are data/imagenet_c_alexnet_errors.tsv. It compares a 1000-way classifier
with AlexNet on those 15 corruptions at 5 severities; on anything else (a 100-class model, extra or missing
corruptions or severities) `mce` is null and `mce_note` says why.
"""

from __future__ import annotations

import functools
from pathlib import Path

ALEXNET_ERRORS = Path(__file__).resolve().parents[2] / "data/imagenet_c_alexnet_errors.tsv"
SEVERITIES = ["1", "2", "3", "4", "5"]
IMAGENET_CLASSES = 1000


def corruption_folders(root) -> list[tuple[str, str, Path]]:
    """(corruption, severity, folder) of a set in ImageNet-C's layout <corruption>/<severity>/<wnid>/."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"evaluation set folder not found: {root} (layout `corruptions`: "
            "<corruption>/<severity>/<wnid>/, as ImageNet-C)"
        )
    found = []
    for corruption in sorted(p for p in root.iterdir() if p.is_dir()):
        severities = sorted((p for p in corruption.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
        if not severities or not all(p.name.isdigit() for p in severities):
            names = ", ".join(p.name for p in severities[:5]) or "none"
            raise ValueError(
                f"{corruption}: expected severity folders 1..5 (layout <corruption>/<severity>/<wnid>/, "
                f"as ImageNet-C); found sub-folders: {names}"
            )
        found += [(corruption.name, s.name, s) for s in severities]
    if not found:
        raise ValueError(f"{root} holds no <corruption>/<severity>/<wnid>/ folders (ImageNet-C layout)")
    return found


def corruption_summary(parts: dict[str, dict[str, dict]]) -> dict:
    """Means over every (corruption, severity) folder, per corruption over its severities, and mCE."""
    metrics = ("top1", "top5", "ece", "nll")
    cells = [r for by_severity in parts.values() for r in by_severity.values()]
    per_corruption = {c: {m: sum(r[m] for r in s.values()) / len(s) for m in metrics} for c, s in parts.items()}
    n_classes = max(r["n_classes_scored"] for r in cells)
    return {
        **{m: sum(r[m] for r in cells) / len(cells) for m in metrics},
        "top5_k": min(r["top5_k"] for r in cells),
        "n_images": sum(r["n_images"] for r in cells),
        "n_classes_scored": n_classes,
        "mean_over": "every (corruption, severity) folder, unweighted",
        "per_corruption": per_corruption,
        "corruptions": {
            c: {s: {k: r[k] for k in (*metrics, "n_images")} for s, r in by_severity.items()}
            for c, by_severity in parts.items()
        },
        **mean_corruption_error(parts, n_classes),
    }


@functools.cache
def alexnet_errors() -> dict[str, float]:
    """AlexNet's top-1 error (fraction) per standard corruption, mean over severities 1..5."""
    rows = ALEXNET_ERRORS.read_text().splitlines()[1:]
    return {corruption: float(error) for corruption, error in (row.split("\t") for row in rows)}


def mce_blocker(parts: dict[str, dict[str, dict]], n_classes: int) -> str | None:
    """Why mCE is not defined for these scores, or None."""
    standard = set(alexnet_errors())
    if set(parts) != standard:
        missing, other = sorted(standard - set(parts)), sorted(set(parts) - standard)
        return (
            f"mCE needs exactly ImageNet-C's 15 standard corruptions; missing: {', '.join(missing) or 'none'}; "
            f"others: {', '.join(other) or 'none'}"
        )
    partial = sorted(c for c, by_severity in parts.items() if sorted(by_severity) != SEVERITIES)
    if partial:
        return f"mCE needs severities 1-5 of every corruption; not so for {', '.join(partial)}"
    if n_classes != IMAGENET_CLASSES:
        return f"mCE compares with AlexNet's 1000-way errors; {n_classes} classes were scored here"
    return None


def mean_corruption_error(parts: dict[str, dict[str, dict]], n_classes: int) -> dict:
    """mCE and each corruption's CE in percent (AlexNet = 100), or `mce` null and the reason."""
    blocker = mce_blocker(parts, n_classes)
    if blocker:
        return {"mce": None, "mce_note": blocker}
    alexnet = alexnet_errors()
    ce = {
        c: 100 * sum(1 - r["top1"] / 100 for r in by_severity.values()) / len(by_severity) / alexnet[c]
        for c, by_severity in parts.items()
    }
    note = "mean over the 15 corruptions of top-1 error / AlexNet's (data/imagenet_c_alexnet_errors.tsv), %"
    return {"mce": sum(ce.values()) / len(ce), "ce": ce, "mce_note": note}
