"""The evaluation preprocessing as numbers, without torch: the shorter side resized to 256/224 of the crop
(the ImageNet convention) and the centre crop. imagenet_sd.train.transforms builds the torchvision transform
from it; the evaluate and attack records (imagenet_sd.evaluate.records) record it, and the result tables read
those records on the login node without loading torch."""

from __future__ import annotations

EVAL_RESIZE_RATIO = 256 / 224


def eval_preprocessing(resolution: int, resize: bool) -> dict:
    """What an evaluation or attack job records of its preprocessing."""
    return {
        "resize_shorter_side": round(resolution * EVAL_RESIZE_RATIO) if resize else None,
        "interpolation": "bilinear" if resize else None,
        "center_crop": resolution,
    }
