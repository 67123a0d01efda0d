"""Real images as a clone: an ImageFolder train set (one sub-folder per wnid, as ImageNet train) indexed
into the same samples the synthetic chunk tars give, so the same pack writes the same kind of shards.

Files are packed as they are: their bytes go into the shards unchanged (JPEG as `jpg`, PNG as `png`, by
their content, whatever their name says), unless a re-encoding is asked for. Pack decodes every file as the
loader and the evaluation will (imagenet_sd.data.images); one that cannot be decoded fails the pack, naming it,
or is left out and counted when the clone says `undecodable: skip`.

Which images are held out (and, with a cap, which are kept) is a seeded choice per class, a pure function of
the seed, the class and the sorted file names.
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

from imagenet_sd.data.shards import Member, Sample
from imagenet_sd.seeds import derive_seed

# ImageNet-1K's class index -> wnid, for evaluation folders named by index (ImageNetV2).
IMAGENET1K_SYNSETS = Path(__file__).resolve().parents[2] / "data/imagenet1k_synsets.tsv"
# torchvision's ImageFolder extensions: what the evaluation side would read from the same folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# WordNet 3.0 noun synsets of the cardinal numbers zero..nine: the classes of scikit-learn's digits.
DIGIT_WNIDS = (
    "n13742358",
    "n13742573",
    "n13743269",
    "n13744044",
    "n13744304",
    "n13744521",
    "n13744722",
    "n13744916",
    "n13745086",
    "n13745270",
)


def class_folders(path: str | os.PathLike) -> list[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir())


def check_folder(path: str | os.PathLike, wnids: list[str]) -> None:
    """An ImageFolder train set must hold one sub-folder per class of the sheet. Raises ValueError naming
    the missing classes, or describing the layout found when it is not one folder per wnid."""
    found = class_folders(path)
    missing = [w for w in wnids if w not in set(found)]
    if not missing:
        return
    if len(missing) == len(wnids):
        shown = ", ".join(found[:5]) or "none"
        raise ValueError(
            f"{path} is not an ImageFolder of the sheet's classes: expected one sub-folder per wnid "
            f"(<path>/n01440764/*.JPEG, as ImageNet train); found sub-folders: {shown}"
        )
    raise ValueError(
        f"{path} has no folder for {len(missing)} of the sheet's {len(wnids)} classes: "
        f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
    )


def class_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def choose(files: list[Path], wnid: str, seed: int, heldout: int, cap: int | None) -> tuple[list[Path], list[Path]]:
    """(train, heldout) files of one class: a seeded permutation, the first `heldout` held out, then up to
    `cap` kept for training (all of the rest without a cap)."""
    if len(files) < heldout + (cap or 1):
        raise ValueError(
            f"class {wnid} has {len(files)} images; the clone asks for {cap or 'all'} train + {heldout} held-out"
        )
    order = list(files)
    random.Random(derive_seed("real-split", seed, wnid)).shuffle(order)
    train = order[heldout : heldout + cap] if cap else order[heldout:]
    return sorted(train), sorted(order[:heldout])


def sample(path: Path, wnid: str, label: int, number: int, root: Path) -> Sample:
    """Key `<wnid>_<number>` (file names may hold dots, which webdataset reads as field separators)."""
    meta = {"wnid": wnid, "source": str(path.relative_to(root)), "real": True}
    return Sample(
        f"{wnid}_{number:07d}",
        wnid,
        label,
        {"jpg": Member(str(path), 0, path.stat().st_size), "json": json.dumps(meta, sort_keys=True).encode()},
    )


def index_folder(
    root: str | os.PathLike, classes: list[str], seed: int, images_per_class: int | None, heldout_per_class: int
) -> tuple[list[Sample], list[Sample]]:
    """(train, heldout) samples of an ImageFolder train set, in class then key order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"real train set folder not found: {root} (an ImageFolder tree with one sub-folder "
            "per wnid, as ImageNet train)"
        )
    check_folder(root, classes)
    train, heldout = [], []
    for label, wnid in enumerate(classes):
        files = class_files(root / wnid)
        kept, held = choose(files, wnid, seed, heldout_per_class, images_per_class)
        number = {p: i for i, p in enumerate(files)}
        train += [sample(p, wnid, label, number[p], root) for p in kept]
        heldout += [sample(p, wnid, label, number[p], root) for p in held]
    return train, heldout


def reencode(data: bytes, quality: int, size: int | None) -> bytes:
    """RGB JPEG at `quality` of the pixels decode_rgb gives (the loader's and the evaluation's), shorter side
    resized to `size` first if given (only when a clone asks)."""
    from PIL import Image

    from imagenet_sd.data.images import decode_rgb  # torch: imported by jobs, not by the planning (plan imports here)

    img = Image.fromarray(decode_rgb(data).permute(1, 2, 0).contiguous().numpy())
    if size and min(img.size) != size:
        scale = size / min(img.size)
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BICUBIC
        )
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def write_digits(out_dir: str | os.PathLike) -> dict[str, int]:
    """scikit-learn's digits (1,797 real 8x8 scans, shipped with the package) as an ImageFolder of 8-bit
    grayscale PNGs, one folder per digit's WordNet synset. Returns images per folder."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    out_dir = Path(out_dir)
    counts: dict[str, int] = {}
    for i, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        wnid = DIGIT_WNIDS[int(target)]
        (out_dir / wnid).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray((pixels * (255 / 16)).round().astype("uint8"))  # 2-D uint8: mode L
        image.save(out_dir / wnid / f"digit_{i:04d}.png", optimize=False)
        counts[wnid] = counts.get(wnid, 0) + 1
    return counts


def folder_wnids(folders: list[str], naming: str) -> dict[str, str]:
    """Folder name -> wnid. `wnid`: the folders are wnids (ImageNet val, Sketch, R, A). `imagenet1k_index`:
    the folders are ImageNet-1K class indices 0..999 in the standard sorted-wnid order (ImageNetV2)."""
    if naming == "wnid":
        return {f: f for f in folders}
    rows = IMAGENET1K_SYNSETS.read_text().splitlines()[1:]
    by_index = {line.split("\t")[0]: line.split("\t")[1] for line in rows}
    unknown = [f for f in folders if f not in by_index]
    if unknown:
        raise ValueError(f"folders named by ImageNet-1K class index must be 0..999; got {unknown[:5]}")
    return {f: by_index[f] for f in folders}
