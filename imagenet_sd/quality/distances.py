"""Distances between a generated clone and a real image set in CLIP space: the Fréchet distance (FD, the
formula of FID on other features) and the kernel inception distance's unbiased estimator (KID, the MMD with
the cubic polynomial kernel), both on the quality step's CLIP image embeddings.

"FD in CLIP space" (Kynkäänniemi et al. 2023; clean-fid's `clip_vit_b_32`), not Inception FID: the jobs are
offline and no Inception weights ship with the workflow; the numbers are comparable between clones measured
with the same CLIP, never with published FIDs (docs/quality.md). Numpy only.
"""

from __future__ import annotations

import numpy as np

from imagenet_sd.quality.quality import unit_rows

KID_SEED = 0  # the subsets KID draws when a set is larger than kid_subset_size: fixed, so a table reruns the same


def trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """tr sqrtm(a b) for symmetric positive semi-definite a, b, as tr sqrtm(a^1/2 b a^1/2): the same
    eigenvalues, of a symmetric matrix, so no complex parts (scipy's sqrtm of a b has them from rounding when
    the covariances are singular, as with fewer images than dimensions)."""
    w, v = np.linalg.eigh(a)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    eigenvalues = np.linalg.eigvalsh(root @ b @ root)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """|mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x S_y)^1/2) of two sets of embeddings (rows); NaN below 2 each."""
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    x, y = x.astype(np.float64), y.astype(np.float64)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    mean = float(((x.mean(axis=0) - y.mean(axis=0)) ** 2).sum())
    return max(0.0, mean + float(np.trace(sx) + np.trace(sy)) - 2.0 * trace_sqrt_product(sx, sy))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel (Binkowski et al. 2018): (x.y / d + 1)^3."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimator of the squared MMD: the within-set means leave out each element's own pair."""
    m, n = len(x), len(y)
    kxx, kyy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * polynomial_kernel(x, y).mean())


def kernel_distance(x: np.ndarray, y: np.ndarray, subset_size: int, subsets: int) -> float:
    """KID: the unbiased MMD^2 of the whole sets when both have at most `subset_size` rows, else its mean over
    `subsets` seeded draws of that many rows of each (without replacement). NaN below 2 rows each."""
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    x, y = x.astype(np.float64), y.astype(np.float64)
    if max(len(x), len(y)) <= subset_size:
        return mmd2_unbiased(x, y)
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(KID_SEED)
    draws = [
        mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(draws))


def load_reference(path) -> np.ndarray:
    with np.load(path) as f:
        return unit_rows(f["images"].astype(np.float32))  # stored as float16, as the generated side


def reference_measures(classes: list, reference: dict, settings: dict) -> tuple[dict, dict]:
    """Per class (wnid -> KID against the real images of its class) and for the whole clone ({fd, kid} of all
    its images against all the reference's). `classes`: the clone's ClassEmbeddings as measured; `reference`:
    {"name": the real clone or evalset, "classes": [(wnid, embedding file)]}."""
    size, subsets = settings["kid_subset_size"], settings["kid_subsets"]
    real = {wnid: load_reference(path) for wnid, path in reference["classes"]}
    per_class = {c.wnid: kernel_distance(c.images, real[c.wnid], size, subsets) for c in classes}
    generated = np.concatenate([c.images for c in classes])
    pooled = np.concatenate(list(real.values()))
    clone = {"fd": frechet_distance(generated, pooled), "kid": kernel_distance(generated, pooled, size, subsets)}
    return per_class, clone
