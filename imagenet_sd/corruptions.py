"""Evaluation sets in ImageNet-C's layout <corruption>/<severity>/<wnid>/ (ImageNet-C, ImageNet-C-bar,
ImageNet-3DCC): their folders, and the means over severities and corruptions.
"""

from __future__ import annotations

from pathlib import Path


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
    """Means over every (corruption, severity) folder, and per corruption over its severities."""
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
    }
