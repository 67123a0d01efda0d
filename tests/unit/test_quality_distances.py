"""FD and KID in CLIP space (imagenet_sd.quality.distances), and the tables of a curated clone measured on the
images it keeps (imagenet_sd.quality.curation.measured_classes)."""

import json

import numpy as np
import pytest
import scipy.linalg
from PIL import Image
from test_quality import DEFAULTS, TINY_CLIP, chunk

from imagenet_sd.quality import distances as D
from imagenet_sd.quality import quality as Q
from imagenet_sd.quality.clip_embed import build_tiny_clip, embed_class, embed_reference
from imagenet_sd.quality.curation import measured_classes


def gaussian(n: int, d: int, seed: int, scale=1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ (np.eye(d) + scale * rng.normal(size=(d, d)) / d)


def test_fd_of_a_set_with_itself_is_zero_and_grows_with_a_shift_of_the_mean():
    x = gaussian(300, 8, 0)
    assert D.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shifts = [D.frechet_distance(x, x + t) for t in (0.1, 0.5, 1.0)]
    # the covariances are equal, so FD is exactly the squared shift of the mean: d * t^2
    assert shifts == pytest.approx([8 * t**2 for t in (0.1, 0.5, 1.0)], rel=1e-9)
    assert D.frechet_distance(x[:1], x) != D.frechet_distance(x[:1], x)  # NaN: one image has no covariance


@pytest.mark.parametrize("n", [400, 6])  # more images than dimensions, and fewer (singular covariances)
def test_fd_matches_scipy_sqrtm_formula(n):
    """FID's reference formula (pytorch-fid): tr(S1 + S2 - 2 sqrtm(S1 S2)) with scipy's sqrtm, real part."""
    x, y = gaussian(n, 10, 1), gaussian(n, 10, 2, scale=3.0) + 0.3
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
    assert D.frechet_distance(x, y) == pytest.approx(expected, rel=1e-6, abs=1e-8)


def direct_kid(x, y) -> float:
    """The unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out pair by pair."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd_estimate_computed_directly():
    x, y = gaussian(5, 3, 3), gaussian(7, 3, 4) + 0.5
    assert D.kernel_distance(x, y, subset_size=10, subsets=1) == pytest.approx(direct_kid(x, y), rel=1e-12)
    assert D.kernel_distance(x, x, subset_size=10, subsets=1) == pytest.approx(direct_kid(x, x), rel=1e-12)
    # larger than the subset size: the mean of the estimate over seeded draws, near 0 for one distribution
    a = gaussian(600, 4, 5)
    same = D.kernel_distance(a[:300], a[300:], subset_size=100, subsets=20)
    shifted = D.kernel_distance(a[:300], a[300:] + 1.0, subset_size=100, subsets=20)
    assert abs(same) < 0.01 * shifted
    assert D.kernel_distance(a[:300], a[300:] + 1.0, subset_size=100, subsets=20) == shifted  # seeded draws


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory, clip_tokenizer_dir):
    return build_tiny_clip(TINY_CLIP, clip_tokenizer_dir, tmp_path_factory.mktemp("clip") / "tiny")


def embedded(tmp_path, tiny_clip, wnid, pixels):
    prompts = tmp_path / f"{wnid}.prompts.json"
    prompts.write_text(json.dumps({"recipes": {"c": {"fields": {"c": f"thing {wnid}"}}}}))
    out = tmp_path / f"{wnid}.npz"
    tars = [chunk(tmp_path / f"{wnid}.tar", wnid, pixels)]
    embed_class(model_dir=tiny_clip, tars=tars, prompt_file=prompts, out=out, device="auto")  # as the rule passes it
    return Q.ClassEmbeddings.load(wnid, out)


def test_real_images_are_embedded_as_the_generated_ones(tmp_path, tiny_clip):
    """The reference job embeds a folder's files exactly as the quality job embeds a chunk's images: the same
    JPEGs give the same embeddings, so a clone against a folder of its own images has FD 0."""
    rng = np.random.default_rng(0)
    pixels = (rng.random((5, 40, 40, 3)) * 255).astype(np.uint8)
    generated = embedded(tmp_path, tiny_clip, "n00000001", pixels)
    folder = tmp_path / "real" / "n00000001"
    folder.mkdir(parents=True)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"{i}.jpg", format="JPEG", quality=90)  # the chunk's JPEG bytes
    source = {"name": "real", "path": str(tmp_path / "real")}
    embed_reference(model_dir=tiny_clip, source=source, wnid="n00000001", out=tmp_path / "ref.npz", device="auto")
    real = D.load_reference(tmp_path / "ref.npz")
    np.testing.assert_allclose(real, generated.images, atol=2e-3)  # float16 storage
    settings = {"kid_subset_size": 1000, "kid_subsets": 1}
    per_class, clone = D.reference_measures([generated], {"classes": [("n00000001", tmp_path / "ref.npz")]}, settings)
    assert clone["fd"] == pytest.approx(0.0, abs=1e-4)
    assert per_class["n00000001"] == clone["kid"] == D.kernel_distance(generated.images, real, 1000, 1)
    with pytest.raises(FileNotFoundError, match="reference 'real': no folder .* for class n00000002"):
        embed_reference(model_dir=tiny_clip, source=source, wnid="n00000002", out=tmp_path / "x.npz")


def test_a_curated_clone_is_measured_on_the_images_it_keeps(tmp_path, tiny_clip):
    """Six generated images, three of them repeats: kept by `distinct`, the class has three images and no
    duplicate pair; measured on all it has six and three pairs."""
    rng = np.random.default_rng(1)
    distinct = (rng.random((3, 48, 48, 3)) * 255).astype(np.uint8)
    c = embedded(tmp_path, tiny_clip, "n00000001", np.concatenate([distinct, distinct]))
    settings = DEFAULTS | {"duplicate_threshold": 0.999, "agreement_threshold": 0.0}
    curation = {"keep": "distinct", "duplicate_threshold": 0.999, "oversample": 2, "images_per_class": 3}
    kept, label = measured_classes([c], curation)
    assert label == "kept" and measured_classes([c], None) == ([c], "generated")
    (all_row,) = Q.class_rows("x", [c], settings)
    (kept_row,) = Q.class_rows("x", kept, settings, label)
    assert (all_row["images"], all_row["duplicate_pairs"], all_row["measured"]) == (6, 3, "generated")
    assert (kept_row["images"], kept_row["duplicate_pairs"], kept_row["measured"]) == (3, 0, "kept")
    assert kept_row["pairwise_distance"] > all_row["pairwise_distance"]  # the repeats' pairs are at distance 0
    np.testing.assert_array_equal(kept[0].images, c.images[:3])
