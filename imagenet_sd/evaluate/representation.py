"""Statistics of a model's frozen features on a labelled image set (n images x d dimensions).

The definitions, with their sources, are in docs/representation.md. Every statistic is computed in
float64 from the float16 features the feature rule stores, in O(n d) memory (the d x d correlation and
Gram matrices aside), so a 50,000 x 2,048 ImageNet val matrix takes seconds.
"""

from __future__ import annotations

import numpy as np

SPARSITY_THRESHOLD = 0.0  # pooled post-ReLU features: a dimension counts as zero when it is <= this
CODING_RATE_EPS = 0.5  # distortion eps of the coding rate, as in the MCR^2 paper's experiments


def sparsity(features: np.ndarray, threshold: float = SPARSITY_THRESHOLD) -> float:
    """Fraction of feature entries <= threshold. For global-average-pooled post-ReLU features an entry is
    0 exactly when its channel is zero at every spatial position."""
    return float(np.mean(np.asarray(features) <= threshold))


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero (they have no direction)."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def class_cosine_distances(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean cosine distance (1 - cos) between two different images of the same class (averaged per class,
    then over classes with >= 2 images), and between two images of different classes (over all such pairs).

    Uses sum_{i != j} cos(u_i, u_j) = ||sum_i u_i||^2 - n for unit vectors u, so no n x n matrix is built.
    """
    u = unit_rows(features)
    labels = np.asarray(labels)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(classes), u.shape[1]))
    np.add.at(sums, inverse, u)
    norms = (u * u).sum(axis=1)  # 1, or 0 for a zero row
    self_sums = np.bincount(inverse, weights=norms, minlength=len(classes))
    within = (sums * sums).sum(axis=1) - self_sums  # sum of cos over ordered pairs i != j of each class
    pairs = counts * (counts - 1)
    several = pairs > 0
    intra = float(np.mean(1 - within[several] / pairs[several])) if several.any() else float("nan")
    total = sums.sum(axis=0)
    between = float(total @ total) - float((sums * sums).sum())
    between_pairs = float(len(labels)) ** 2 - float((counts.astype(np.float64) ** 2).sum())
    inter = 1 - between / between_pairs if between_pairs else float("nan")
    return {"intra_class_distance": intra, "inter_class_distance": float(inter)}


def redundancy(features: np.ndarray) -> float:
    """Mean |Pearson correlation| over pairs of distinct dimensions; constant dimensions (no variance, e.g.
    channels that are always zero) have no correlation and are left out."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    std = np.sqrt((x * x).mean(axis=0))
    live = std > 0
    if live.sum() < 2:
        return float("nan")
    z = x[:, live] / std[live]
    corr = (z.T @ z) / len(z)
    d = corr.shape[0]
    return float((np.abs(corr).sum() - np.abs(np.diag(corr)).sum()) / (d * (d - 1)))


def coding_rate(features: np.ndarray, eps: float = CODING_RATE_EPS, normalize: bool = True) -> float:
    """R(Z, eps) = 1/2 logdet(I_d + d / (n eps^2) Z Z^T) in nats, Z = features^T (d x n), rows L2-normalised
    first as in MCR^2 (which puts features on the unit sphere)."""
    z = unit_rows(features) if normalize else np.asarray(features, dtype=np.float64)
    n, d = z.shape
    gram = z.T @ z if d <= n else z @ z.T  # same non-zero spectrum: logdet(I + a Z Z^T) = logdet(I + a Z^T Z)
    _, logdet = np.linalg.slogdet(np.eye(len(gram)) + d / (n * eps**2) * gram)
    return float(0.5 * logdet)


def model_class_rows(labels: np.ndarray, names: list[str], classes: list[str]) -> tuple[np.ndarray, list, list]:
    """(mask of the rows whose class, names[label], is one of the model's `classes`; those classes present, in
    model order; the set's classes the model lacks). Statistics of a model describe its own classes: an
    ImageNet-100 model on the whole ImageNet val folder is analysed on the 100 classes it scores, as evaluation
    scores it, not on 1,000."""
    present = {names[i] for i in np.unique(labels)}
    wanted = set(classes)
    mask = np.isin(labels, [i for i, name in enumerate(names) if name in wanted])
    return mask, [c for c in classes if c in present], sorted(present - wanted)


def statistics(
    features: np.ndarray, labels: np.ndarray, *, eps: float = CODING_RATE_EPS, threshold: float = SPARSITY_THRESHOLD
) -> dict:
    """Every statistic of one feature matrix, with the settings they depend on."""
    features = np.asarray(features)
    return {
        "sparsity": sparsity(features, threshold),
        **class_cosine_distances(features, labels),
        "redundancy": redundancy(features),
        "coding_rate": coding_rate(features, eps),
        "n_images": int(features.shape[0]),
        "dim": int(features.shape[1]),
        "n_classes": len(np.unique(labels)),
        "settings": {
            "sparsity_threshold": threshold,
            "coding_rate_eps": eps,
            "coding_rate_log": "natural",
            "coding_rate_rows": "L2-normalised",
        },
    }
