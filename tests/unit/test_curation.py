"""Curation (clones.<name>.curation): oversampled classes packed down to their best images, chosen from the
quality step's CLIP embeddings; a changed setting repacks and regenerates nothing."""

import numpy as np
import pytest

from imagenet_sd.quality.curation import keep_best, keep_distinct, kept_keys


def test_keep_best_takes_the_highest_scores_in_index_order():
    assert keep_best(np.array([0.2, 0.9, 0.5, 0.9]), 2) == [1, 3]
    assert keep_best(np.array([3.0, 1.0, 2.0]), 2) == [0, 2]


def test_keep_distinct_skips_near_duplicates_of_kept_images():
    images = np.eye(3, dtype=np.float32)[[0, 0, 1, 1, 2]]  # two copies of each of the first two images
    assert keep_distinct(images, 3, 0.99) == [0, 2, 4]
    assert keep_distinct(images, 2, 0.99) == [0, 2]


def test_too_few_distinct_images_is_an_error_naming_the_class(tmp_path):
    path = tmp_path / "n1.npz"
    images = np.ones((4, 3), dtype=np.float16)
    np.savez(path, keys=np.array([f"n1_{i:06d}" for i in range(4)]), images=images, clip_score=np.zeros(4))
    np.savez(path, **dict(np.load(path)), name=np.array("x"), name_embedding=np.ones(3))
    settings = {"keep": "distinct", "duplicate_threshold": 0.95}
    with pytest.raises(ValueError, match="class n1: only 1 of 4 generated images are distinct"):
        kept_keys({"n1": str(path)}, 2, settings)
    assert len(kept_keys({"n1": str(path)}, 2, settings | {"keep": "clip_score"})) == 2


CURATION = {"oversample": 2, "keep": "distinct", "duplicate_threshold": 0.9999}
TARGETS = ("results/clones/big/train.json", "results/tables/quality.csv")
