"""Transfer datasets: reading every layout into one index (image paths, labels, class names), preparing
the sets torchvision downloads, the bundled digits of scikit-learn, and seeded splits for sets without one.

An index is what the features job reads: {"root", "classes", "samples": [[relative path, label], ...]},
labels in the order of `classes`. Building it is the only place that knows a dataset's file layout.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from imagenet_sd.data.realdata import folder_wnids

UNSPLIT_TORCHVISION = ("EuroSAT",)  # torchvision sets with no official split: one is drawn (`test_fraction`)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# Where each layout finds a split, relative to the set's folder, unless the config names it (`splits`).
DEFAULT_SPLITS = {
    "imagefolder": {"train": "train", "test": "test"},
    "lists": {"train": "train.tsv", "test": "test.tsv"},
    "sun397": {"train": "Partitions/Training_01.txt", "test": "Partitions/Testing_01.txt"},
    "inat": {"train": "train2018.json", "test": "val2018.json"},
    "cars": {"train": "devkit/cars_train_annos.mat", "test": "cars_test_annos_withlabels.mat"},
}
# torchvision's class, its official (train, test) splits as torchvision names them, and the attribute that
# holds the image files. Train+val are merged into train: the probe holds out its own validation split.
TORCHVISION_SETS = {
    "FGVCAircraft": (("trainval",), ("test",), "_image_files"),
    "DTD": (("train", "val"), ("test",), "_image_files"),
    "Flowers102": (("train", "val"), ("test",), "_image_files"),
    "OxfordIIITPet": (("trainval",), ("test",), "_images"),
    "Food101": (("train",), ("test",), "_image_files"),
}  # and UNSPLIT_TORCHVISION (EuroSAT): one split only, a seeded per-class test fraction is drawn here


def seeded_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of `fraction` of each class (rounded, at least one when a class has two or more),
    drawn with `seed`: the same labels and seed give the same mask on every machine."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue  # a lone image stays on the training side
        take = min(max(int(round(fraction * len(members))), 1), len(members) - 1)
        mask[rng.permutation(members)[:take]] = True
    return mask


def index_from_pairs(root, pairs: list[tuple[str, str]], classes: list[str] | None = None) -> dict:
    """An index from (relative path, class name) pairs; classes sorted unless given."""
    classes = list(classes) if classes is not None else sorted({c for _, c in pairs})
    position = {c: i for i, c in enumerate(classes)}
    unknown = sorted({c for _, c in pairs if c not in position})
    if unknown:
        raise ValueError(f"{root}: class(es) {unknown[:5]} are not among the dataset's classes")
    return {"root": str(root), "classes": classes, "samples": [[p, position[c]] for p, c in pairs]}


def imagefolder_pairs(folder: Path, root: Path) -> list[tuple[str, str]]:
    """(path relative to root, folder name) of every image one level below `folder`."""
    return [
        (str(path.relative_to(root)), path.parent.name)
        for path in sorted(folder.glob("*/*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]


def lists_pairs(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f, delimiter="\t") if row]
    bad = [i for i, row in enumerate(rows, 1) if len(row) != 2]
    if bad:
        raise ValueError(f"{path}, line {bad[0]}: expected `relative/path<TAB>class`")
    return [(p, c) for p, c in rows]


def sun397_pairs(path: Path) -> list[tuple[str, str]]:
    """SUN397 partition files list `/a/abbey/sun_xxx.jpg`; the class is the path without the file name,
    and images sit under <folder>/SUN397/."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [(f"SUN397{line}", line.rsplit("/", 1)[0].lstrip("/")) for line in lines]


def inat_pairs(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """iNaturalist's COCO-style json: images, annotations (category_id) and categories (every class)."""
    data = json.loads(path.read_text())
    category = {a["image_id"]: a["category_id"] for a in data["annotations"]}
    classes = [str(c["id"]) for c in sorted(data["categories"], key=lambda c: c["id"])]
    return [(im["file_name"], str(category[im["id"]])) for im in data["images"]], classes


def cars_pairs(path: Path, root: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Stanford Cars devkit .mat annotations (class 1..196, names in devkit/cars_meta.mat)."""
    from scipy.io import loadmat

    names = [str(n[0]) for n in loadmat(root / "devkit/cars_meta.mat")["class_names"][0]]
    folder = "cars_train" if "train" in path.name else "cars_test"
    annotations = loadmat(path)["annotations"][0]
    return [(f"{folder}/{a['fname'][0]}", names[int(a["class"][0][0]) - 1]) for a in annotations], names


def only_classes(pairs: list[tuple[str, str]], classes: list[str] | None, only: list[str], where: str):
    """(pairs, classes) restricted to the classes of `only`: an evaluation set's declared classes."""
    keep = set(only)
    pairs = [(p, c) for p, c in pairs if c in keep]
    if not pairs:
        raise ValueError(f"{where} holds no image of the {len(keep)} listed classes (e.g. {', '.join(only[:3])})")
    return pairs, None if classes is None else [c for c in classes if c in keep]


def build_index(
    root: str,
    layout: str,
    split: str,
    splits: dict | None = None,
    folder_names: str = "wnid",
    only: list[str] | None = None,
) -> dict:
    """The index of one split of a dataset folder, whatever its layout; `only`: the class names to keep (the
    rest of the folder is left out). Errors name the missing file."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(
            f"dataset folder not found: {root} (see docs/transfer.md for what to fetch and where it goes)"
        )
    where = root_path / {**DEFAULT_SPLITS[layout], **(splits or {})}[split]  # "" or ".": the folder itself
    if not where.exists():
        raise FileNotFoundError(f"dataset folder {root}: split {split!r} expected at {where}, which is missing")
    classes = None
    if layout == "imagefolder":
        pairs = imagefolder_pairs(where, root_path)
        names = folder_wnids(sorted({c for _, c in pairs}), folder_names)
        pairs = [(p, names[c]) for p, c in pairs]
    elif layout == "lists":
        pairs = lists_pairs(where)
    elif layout == "sun397":
        pairs = sun397_pairs(where)
    elif layout == "inat":
        pairs, classes = inat_pairs(where)
    else:
        pairs, classes = cars_pairs(where, root_path)
    if not pairs:
        raise ValueError(f"dataset folder {root}: split {split!r} ({where}) holds no image")
    if only is not None:
        pairs, classes = only_classes(pairs, classes, only, f"dataset folder {root}: split {split!r} ({where})")
    return index_from_pairs(root, pairs, classes)


def write_lists(folder: Path, pairs_by_split: dict[str, list[tuple[str, str]]]) -> None:
    for split, pairs in pairs_by_split.items():
        with (folder / f"{split}.tsv").open("w", newline="") as f:
            csv.writer(f, delimiter="\t", lineterminator="\n").writerows(pairs)


def split_pairs(pairs: list[tuple[str, str]], test_fraction: float, seed: int) -> dict:
    test = seeded_split(np.array([c for _, c in pairs]), test_fraction, seed)
    return {"train": [p for p, t in zip(pairs, test) if not t], "test": [p for p, t in zip(pairs, test) if t]}


def prepare_torchvision(name: str, folder: str | Path, test_fraction: float, seed: int) -> dict[str, int]:
    """Download a torchvision set into `folder` (login node) and write train.tsv / test.tsv beside it."""
    import torchvision.datasets as tvd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cls = getattr(tvd, name)

    def pairs_of(dataset, files) -> list[tuple[str, str]]:
        names = getattr(dataset, "classes", None)
        return [
            (str(Path(f).resolve().relative_to(folder.resolve())), names[y] if names else str(y))
            for f, y in zip(files, dataset._labels)
        ]

    if name in UNSPLIT_TORCHVISION:
        dataset = cls(folder, download=True)
        pairs = [(str(Path(p).resolve().relative_to(folder.resolve())), dataset.classes[y]) for p, y in dataset.samples]
        by_split = split_pairs(pairs, test_fraction, seed)
    else:
        train_splits, test_splits, attribute = TORCHVISION_SETS[name]
        by_split = {}
        for split, names in (("train", train_splits), ("test", test_splits)):
            by_split[split] = []
            for torch_split in names:
                dataset = cls(folder, split=torch_split, download=True)
                by_split[split] += pairs_of(dataset, getattr(dataset, attribute))
    write_lists(folder, by_split)
    return {split: len(p) for split, p in by_split.items()}


def prepare_digits(folder: str | Path, size: int, test_fraction: float, seed: int) -> dict[str, int]:
    """scikit-learn's bundled digits (1,797 real 8x8 scans of handwritten digits, 10 classes), upsampled
    to `size` px RGB PNGs with a seeded per-class test split: a real transfer set with no download."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = Path(folder)
    digits = load_digits()
    pairs = []
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        pixels = (255 - image * 255 / 16).round().astype(np.uint8)  # ink dark on white paper, as scanned
        rel = f"images/{label}/{i:04d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).resize((size, size), Image.BICUBIC).convert("RGB").save(folder / rel)
        pairs.append((rel, str(label)))
    by_split = split_pairs(pairs, test_fraction, seed)
    write_lists(folder, by_split)
    return {split: len(p) for split, p in by_split.items()}
