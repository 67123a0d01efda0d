"""Representation statistics in the real workflow describe the model's own classes, whatever else the
evaluation set's folder holds."""

import json

import numpy as np
from conftest import copy_workflow, run_snakemake, write_config
from PIL import Image
from test_models import released_format

from imagenet_sd import paths

MODEL = ["n01440764", "n01443537", "n01491361", "n01494475", "n01496331", "n01498041"]
EXTRA = "n01484850"  # great white shark: in the folder, not in the model; sorts between the model's classes


def image_folder(root, wnids):
    """Three noise images per class, the same pixels for a class in every folder."""
    for wnid in wnids:
        (root / wnid).mkdir(parents=True)
        rng = np.random.default_rng(int(wnid[1:]))
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / wnid / f"{i}.png")


def config() -> dict:
    sets = {"seven": {"path": "seven"}, "six": {"path": "six"}, "seven-listed": {"path": "seven", "classes": "six.txt"}}
    return {
        "seed": 0,
        "class_sets": {"six": {"sheet": "six.tsv"}},
        "models": {"ext": {"checkpoint": "six.pth", "class_set": "six", "arch": "resnet18", "evaluate": list(sets)}},
        "evalsets": sets,
        "representation": {"evalsets": list(sets)},
        # one image per forward pass: a shared image gets the same features in either folder
        "transfer": {"preprocessing": {"resize": 16, "crop": 16}, "batch_size": 1, "workers": 0},
    }


def test_a_six_class_model_on_a_seven_class_folder_is_analysed_on_its_six_classes(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "six.tsv").write_text("wnid\n" + "\n".join(MODEL) + "\n")
    (workdir / "six.txt").write_text("\n".join(MODEL) + "\n")
    released_format(workdir / "six.pth", num_classes=len(MODEL))
    image_folder(workdir / "seven", sorted([*MODEL, EXTRA]))
    image_folder(workdir / "six", MODEL)
    write_config(workdir, config())
    stats = {s: paths.REPRESENTATION.format(model="ext", evalset=s) for s in ("seven", "six")}
    listed = paths.DATASET_INDEX.format(dataset="seven-listed", part="test")
    run_snakemake(workdir, *stats.values(), listed)
    seven, six = (json.loads((workdir / stats[s]).read_text()) for s in ("seven", "six"))
    assert seven["classes"] == MODEL == six["classes"]
    assert seven["evalset_classes_not_in_model"] == [EXTRA] and six["evalset_classes_not_in_model"] == []
    assert seven["n_classes"] == 6 and seven["n_images"] == six["n_images"] == 18
    for statistic in ("sparsity", "intra_class_distance", "inter_class_distance", "redundancy", "coding_rate"):
        assert seven[statistic] == six[statistic], statistic
    # A set's class list bounds its index, so the features job reads only the listed classes' images.
    index = json.loads((workdir / listed).read_text())
    assert index["classes"] == MODEL and len(index["samples"]) == 18
