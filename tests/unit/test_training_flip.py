"""The training recipe's `flip` switch: horizontal flips of the crops, off for images whose mirror is another
thing (the demo's digits). Off changes nothing else, and a recipe that keeps the default keeps its params."""

import torch

from imagenet_sd.config import job_params
from imagenet_sd.train import gpu_augment as ga
from imagenet_sd.train.training import resolve_training


def ramps(n: int, size: int) -> torch.Tensor:
    """uint8 images brighter to the right: a mirrored crop is told from an unmirrored one by its sign."""
    row = torch.linspace(0, 255, size).round().to(torch.uint8)
    return row.expand(n, 3, size, size).clone()


def crops(flip: bool, seed: int = 0):
    images = ramps(16, 12)
    sizes = torch.tensor([[12, 12]] * len(images))
    gen = torch.Generator().manual_seed(seed)
    out = ga.resized_crops(images, sizes, ga.ViewPolicy(12, 2, (1.0, 1.0), flip), gen)
    return out, torch.rand(4, generator=gen)  # what a later augmentation would draw


def increasing(x: torch.Tensor) -> torch.Tensor:
    """Per crop: whether it still gets brighter to the right (not mirrored)."""
    return x[:, 0, 6, -1] > x[:, 0, 6, 0]


def test_flip_off_never_mirrors_and_leaves_every_later_draw_as_it_was():
    flipped, after_on = crops(flip=True)
    kept, after_off = crops(flip=False)
    assert increasing(kept).all()
    mirrored = (~increasing(flipped)).sum().item()
    assert 0 < mirrored < len(flipped)  # on: about half of the 32 crops are mirrored
    torch.testing.assert_close(flipped[increasing(flipped)], kept[increasing(flipped)])
    torch.testing.assert_close(after_on, after_off)  # the flip coins are drawn either way


def test_the_recipe_switch_reaches_every_view():
    for augmentation, local_crops in (("simple", 0), ("dino", 2)):
        base = {"augmentation": augmentation, "local_crops": local_crops}
        on = ga.view_policies(resolve_training(base))
        off = ga.view_policies(resolve_training({**base, "flip": False}))
        assert [v.flip for v in on] == [True] * len(on) and [v.flip for v in off] == [False] * len(off)
        assert [v.size for v in on] == [v.size for v in off]


def test_a_recipe_at_the_old_behaviour_keeps_its_job_params():
    """Snakemake reruns a job whose params changed: a training that keeps flips must not see a new key."""
    before = resolve_training({"epochs": 3})
    before.pop("flip")  # a training resolved before the key existed
    assert job_params("trainings", resolve_training({"epochs": 3})) == before
    assert job_params("trainings", resolve_training({"epochs": 3, "flip": False})) == {**before, "flip": False}
