"""Representation statistics on constructed features whose values are known in closed form."""

import math

import numpy as np
import pytest
from conftest import load_script
from PIL import Image

from imagenet_sd.data.transfer_sets import build_index
from imagenet_sd.evaluate.representation import class_cosine_distances, coding_rate, redundancy, sparsity, statistics

E = np.eye(4)


def test_sparsity_counts_entries_at_or_below_the_threshold():
    features = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.01]])
    assert sparsity(features) == pytest.approx(4 / 8)
    assert sparsity(features, threshold=0.05) == pytest.approx(5 / 8)


def test_intra_and_inter_class_cosine_distance():
    # Class 0: two orthogonal vectors (distance 1); class 1: one direction, scaled (distance 0).
    # Every cross pair is orthogonal (distance 1).
    features = np.stack([E[0], 2 * E[1], E[2], 5 * E[2]])
    found = class_cosine_distances(features, np.array([0, 0, 1, 1]))
    assert found["intra_class_distance"] == pytest.approx((1 + 0) / 2)
    assert found["inter_class_distance"] == pytest.approx(1.0)
    # Opposite classes: every cross pair has cos -1 (distance 2), classes are tight (distance 0).
    opposite = np.stack([E[0], E[0], -E[0], -3 * E[0]])
    found = class_cosine_distances(opposite, np.array([0, 0, 1, 1]))
    assert found["intra_class_distance"] == pytest.approx(0.0)
    assert found["inter_class_distance"] == pytest.approx(2.0)


def test_intra_class_distance_matches_all_pairs_by_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 6)), rng.integers(0, 3, 30)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1 - u @ u.T
    intra = np.mean([dist[np.ix_(y == c, y == c)][~np.eye((y == c).sum(), dtype=bool)].mean() for c in range(3)])
    inter = dist[y[:, None] != y[None, :]].mean()
    found = class_cosine_distances(x, y)
    assert found["intra_class_distance"] == pytest.approx(intra)
    assert found["inter_class_distance"] == pytest.approx(inter)


def test_redundancy_is_mean_absolute_correlation():
    # a and b uncorrelated (orthogonal, zero-mean), c = -a (|r| = 1): pairs (a,b)=0, (a,c)=1, (b,c)=0.
    a, b = np.array([1.0, -1.0, 1.0, -1.0]), np.array([1.0, 1.0, -1.0, -1.0])
    assert redundancy(np.stack([a, b, -a], axis=1)) == pytest.approx(1 / 3)
    # An always-zero dimension has no correlation and is left out.
    assert redundancy(np.stack([a, b, -a, np.zeros(4)], axis=1)) == pytest.approx(1 / 3)


@pytest.mark.parametrize("eps", [0.5, 1.0])
def test_coding_rate_of_k_orthogonal_directions(eps):
    # n = 12 unit features on k orthogonal directions, n/k each: Z Z^T = (n/k) sum_i e_i e_i^T, so
    # R = k/2 log(1 + d/(n eps^2) n/k) = k/2 log(1 + d/(k eps^2)).
    d = 4
    for k in (1, 2, 4):
        features = np.repeat(E[:k], 12 // k, axis=0) * 3.0  # scale is removed by the normalisation
        assert coding_rate(features, eps) == pytest.approx(k / 2 * math.log(1 + d / (k * eps**2)))


def test_coding_rate_is_the_same_with_more_dimensions_than_images():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 40))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    direct = 0.5 * np.linalg.slogdet(np.eye(40) + 40 / (5 * 0.25) * u.T @ u)[1]
    assert coding_rate(x, 0.5) == pytest.approx(direct)


def write_features(path, features, labels, classes):
    np.savez(
        path, features=np.asarray(features, dtype=np.float16), labels=np.asarray(labels), classes=np.array(classes)
    )
    return path


def test_analyze_script_reads_a_features_file(tmp_path):
    features = np.stack([E[0], 2 * E[1], E[2], 5 * E[2]]).astype(np.float16)
    path = write_features(tmp_path / "features.npz", features, [0, 0, 1, 1], ["n1", "n2"])
    out = tmp_path / "stats.json"
    found = load_script("analyze").main(
        features=path, output=out, eps=0.5, threshold=0.0, classes=["n1", "n2"], model="m", evalset="s"
    )
    assert found == {
        **statistics(features, [0, 0, 1, 1], eps=0.5),
        "classes": ["n1", "n2"],
        "evalset_classes_not_in_model": [],
        "model": "m",
        "evalset": "s",
        "features": str(path),
    }
    assert found["sparsity"] == pytest.approx(12 / 16) and found["intra_class_distance"] == pytest.approx(0.5)
    assert out.is_file()


def test_analyze_keeps_only_the_images_of_the_models_classes(tmp_path):
    # Three set classes; the model knows n3 and n1 (in that output order) and n4, which the set lacks.
    rng = np.random.default_rng(3)
    features, labels = rng.random((12, 5)), np.repeat([0, 1, 2], 4)
    path = write_features(tmp_path / "f.npz", features, labels, ["n1", "n2", "n3"])
    found = load_script("analyze").main(
        features=path, output=tmp_path / "s.json", eps=0.5, threshold=0.0, classes=["n3", "n1", "n4"], model="m"
    )
    kept = labels != 1
    expected = statistics(features.astype(np.float16)[kept], labels[kept], eps=0.5)
    assert found["classes"] == ["n3", "n1"] and found["evalset_classes_not_in_model"] == ["n2"]
    assert found["n_classes"] == 2 and found["n_images"] == 8
    assert {k: found[k] for k in expected} == expected
    with pytest.raises(ValueError, match=r"no image of the 1 classes of model m"):
        load_script("analyze").main(
            features=path, output=tmp_path / "t.json", eps=0.5, threshold=0.0, classes=["n9"], model="m"
        )


def test_an_evaluation_sets_class_list_bounds_its_index(tmp_path):
    for wnid in ("n01440764", "n01443537", "n01484850"):
        (tmp_path / "val" / wnid).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "val" / wnid / "a.png")
    (tmp_path / "listed.txt").write_text("n01484850\nn01440764\nn09999999\n")
    index = load_script("index_dataset").main(
        root=str(tmp_path / "val"),
        layout="imagefolder",
        splits={"test": ""},
        folder_names="wnid",
        split="test",
        output=str(tmp_path / "index.json"),
        classes=str(tmp_path / "listed.txt"),
    )
    assert index["classes"] == ["n01440764", "n01484850"]
    assert index["samples"] == [["n01440764/a.png", 0], ["n01484850/a.png", 1]]
    with pytest.raises(ValueError, match=r"holds no image of the 1 listed classes \(e.g. n02000000\)"):
        build_index(str(tmp_path / "val"), "imagefolder", "test", {"test": ""}, only=["n02000000"])
