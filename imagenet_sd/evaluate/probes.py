"""Linear probes on frozen features: a seeded per-class validation split of the training split, a
hyper-parameter search on it, a refit on the whole training split, then test top-1 and mean per-class
accuracy. Test labels enter only the final scoring, after every choice is made. A set with no official split
draws its test split per seed too, from the features of all its images.

Two probes, as in the t-ReX transfer protocol: scikit-learn's L-BFGS logistic regression on raw features
(small sets; C searched) and a torch linear layer on L2-normalised features trained with SGD (large sets;
learning rate and weight decay searched). The search is a deterministic log-scale grid (docs/transfer.md).
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch

from imagenet_sd.data.transfer_sets import seeded_split
from imagenet_sd.seeds import derive_seed

log = logging.getLogger(__name__)


def top1(pred: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float(np.mean(pred == labels)) if len(labels) else float("nan")


def mean_per_class(pred: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float(np.mean([np.mean(pred[labels == c] == c) for c in np.unique(labels)]))


def log_grid(low: float, high: float, trials: int) -> list[float]:
    """Coarse stage of the 1-D search: half the trials evenly spaced in log scale over [low, high]."""
    return [float(x) for x in np.logspace(math.log10(low), math.log10(high), max(2, math.ceil(trials / 2)))]


def search_1d(score, low: float, high: float, trials: int) -> tuple[float, list[tuple[float, float]]]:
    """Maximise score(x) over x in [low, high] (log scale) with `trials` calls: a coarse grid, then the rest
    evenly between the neighbours of its best point. Ties go to the smaller x (stronger regularisation)."""
    coarse = log_grid(low, high, trials)
    history = [(x, score(x)) for x in coarse]
    best = max(history, key=lambda h: (h[1], -h[0]))[0]
    step = (math.log10(high) - math.log10(low)) / (len(coarse) - 1)
    fine = np.linspace(math.log10(best) - step, math.log10(best) + step, trials - len(coarse) + 2)[1:-1]
    for exponent in fine:
        x = float(10 ** np.clip(exponent, math.log10(low), math.log10(high)))
        if all(not math.isclose(x, h[0]) for h in history):
            history.append((x, score(x)))
    best = max(history, key=lambda h: (h[1], -h[0]))[0]
    return float(best), sorted((float(x), s) for x, s in history)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float, max_iter: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # large C on separable data: the limit is the protocol's
        return LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter).fit(x, y)


def logistic_probe(train, val, settings: dict, seed: int) -> tuple[dict, list]:
    """Best C on the validation split; returns ({"C": best}, history of (C, validation top-1))."""

    def score(c):
        return top1(fit_logistic(*train, c, settings["max_iter"]).predict(val[0]), val[1])

    best, history = search_1d(score, settings["c_min"], settings["c_max"], settings["trials"])
    return {"C": best}, history


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_linear(
    x: np.ndarray, y: np.ndarray, n_classes: int, lr: float, wd: float, settings: dict, seed: int, device: torch.device
) -> torch.nn.Linear:
    """torch Linear with bias on L2-normalised features: SGD + momentum, cosine schedule, seeded order."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = torch.nn.Linear(x.shape[1], n_classes).to(device)
    features = torch.from_numpy(l2_normalise(x)).to(device)
    labels = torch.from_numpy(y).long().to(device)
    batch = min(settings["batch_size"], len(y))
    steps_per_epoch = math.ceil(len(y) / batch)
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr, momentum=settings["momentum"], weight_decay=wd)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings["epochs"] * steps_per_epoch)
    for _ in range(settings["epochs"]):
        order = torch.randperm(len(y), generator=generator).to(device)
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            loss = torch.nn.functional.cross_entropy(layer(features[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return layer


@torch.no_grad()
def predict_linear(layer: torch.nn.Linear, x: np.ndarray, device: torch.device) -> np.ndarray:
    return layer(torch.from_numpy(l2_normalise(x)).to(device)).argmax(1).cpu().numpy()


def linear_grid(settings: dict) -> list[tuple[float, float]]:
    """(lr, weight decay) pairs: a log grid using at most `trials` fits, about 6 x 5 for 30."""
    n_wd = max(1, int(math.sqrt(settings["trials"] * 5 / 6)))
    n_lr = max(1, settings["trials"] // n_wd)
    lrs = np.logspace(math.log10(settings["lr_min"]), math.log10(settings["lr_max"]), n_lr)
    wds = np.logspace(math.log10(settings["wd_min"]), math.log10(settings["wd_max"]), n_wd)
    return [(float(lr), float(wd)) for lr in lrs for wd in wds]


def linear_probe(train, val, settings: dict, seed: int, n_classes: int, device) -> tuple[dict, list]:
    history = []
    for lr, wd in linear_grid(settings):
        layer = fit_linear(*train, n_classes, lr, wd, settings, seed, device)
        history.append(((lr, wd), top1(predict_linear(layer, val[0], device), val[1])))
    (lr, wd), _ = max(history, key=lambda h: (h[1], h[0][1] * -1, -h[0][0]))  # ties: smaller wd, smaller lr
    return {"lr": lr, "weight_decay": wd}, history


def redraw_test_split(train: tuple, test: tuple, fraction: float, seed: int) -> tuple[tuple, tuple, np.ndarray]:
    """A set with no official split: the rows of both prepared splits pooled (their features are extracted
    once), and `fraction` of each class drawn as this seed's test split. Returns the training part, the test
    part and the test rows of the pool (train rows first, then test rows). The draw's seed is derived apart
    from the validation split's, which uses `seed` itself."""
    x, y = np.concatenate([train[0], test[0]]), np.concatenate([train[1], test[1]])
    is_test = seeded_split(y, fraction, derive_seed("transfer test split", seed))
    return (x[~is_test], y[~is_test]), (x[is_test], y[is_test]), np.flatnonzero(is_test)


def search_and_fit(kind: str, train: tuple, is_val: np.ndarray, test_x, settings: dict, seed: int, n_classes, device):
    """The search on the validation rows, the refit on the whole training split; (choice, search, test predictions)."""
    train_x, train_y = train
    fit_part = (train_x[~is_val].astype(np.float32), train_y[~is_val])
    val_part = (train_x[is_val].astype(np.float32), train_y[is_val])
    if kind == "logistic":
        chosen, history = logistic_probe(fit_part, val_part, settings, seed)
        final = fit_logistic(train_x.astype(np.float32), train_y, chosen["C"], settings["max_iter"])
        return chosen, history, final.predict(test_x.astype(np.float32))
    if kind == "linear":
        chosen, history = linear_probe(fit_part, val_part, settings, seed, n_classes, device)
        final = fit_linear(train_x, train_y, n_classes, chosen["lr"], chosen["weight_decay"], settings, seed, device)
        return chosen, history, predict_linear(final, test_x, device)
    raise ValueError(f"unknown probe kind {kind!r} (known: logistic, linear)")


def run_probe(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    kind: str,
    settings: dict,
    val_fraction: float,
    seed: int,
    n_classes: int,
    device=None,
    test_fraction: float | None = None,
) -> dict:
    """Search on a held-out part of the training split, refit on all of it, score on the test split.
    `test_fraction` (a set with no official split): the test split is first drawn again with `seed`."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    test_rows = None
    if test_fraction is not None:
        drawn = redraw_test_split((train_x, train_y), (test_x, test_y), test_fraction, seed)
        (train_x, train_y), (test_x, test_y), test_rows = drawn
    is_val = seeded_split(train_y, val_fraction, seed)
    chosen, history, pred = search_and_fit(kind, (train_x, train_y), is_val, test_x, settings, seed, n_classes, device)
    log.info("%s probe: chose %s (validation top-1 %.2f%%)", kind, chosen, max(h[1] for h in history))
    return {
        "kind": kind,
        "seed": seed,
        "chosen": chosen,
        "val_top1": max(h[1] for h in history),
        "search": [[h[0], h[1]] for h in history],
        "top1": top1(pred, test_y),
        "mean_per_class": mean_per_class(pred, test_y),
        "n_train": int(len(train_y)),
        "n_val": int(is_val.sum()),
        "n_test": int(len(test_y)),
        "n_classes": n_classes,
        "chance_top1": 100.0 / n_classes,
        "val_indices": np.flatnonzero(is_val).tolist(),
        "test_fraction": test_fraction,  # None: the set's own test split
        "test_indices": None if test_rows is None else test_rows.tolist(),
    }
