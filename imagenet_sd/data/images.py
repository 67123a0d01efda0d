"""One way to turn image bytes into RGB pixels, shared by pack (its check and re-encoding of real files), the
training loader and every evaluation, so that a file gives the same pixels wherever it is read.

Real ImageNet train holds files that are not what their names say: PNGs named `.JPEG`, CMYK JPEGs,
grayscale images; other real sets add 16-bit PNGs and photos with an EXIF orientation tag. All are decoded
by torchvision (libjpeg-turbo, libpng) into 8-bit RGB: grayscale is repeated over the channels, CMYK is
converted as PIL converts it, alpha is dropped, 16 bits become 8 (the high byte). The EXIF orientation is
ignored everywhere, as torchvision's ImageFolder (PIL's `convert("RGB")`) ignores it: that is how the
published ImageNet numbers this workflow compares against were measured. Formats torchvision does not read
(BMP, TIFF, PPM) go through PIL.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2.functional import to_dtype


def torchvision_reads(data: bytes) -> bool:
    """JPEG, PNG, GIF or WebP, by their leading bytes: the formats torchvision decodes itself."""
    return (
        data[:3] == b"\xff\xd8\xff"
        or data[:8] == b"\x89PNG\r\n\x1a\n"
        or data[:4] == b"GIF8"
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


def decode_rgb(data: bytes) -> torch.Tensor:
    """uint8 RGB pixels (3, H, W) of an image file's bytes. Raises (RuntimeError, OSError, ...) when they are
    not a decodable image."""
    if not torchvision_reads(data):
        with Image.open(io.BytesIO(data)) as image:
            return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()
    pixels = decode_image(
        torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB, apply_exif_orientation=False
    )
    if pixels.dtype != torch.uint8:  # a 16-bit PNG
        pixels = to_dtype(pixels, torch.uint8, scale=True)
    return pixels


def load_rgb(path: str | Path) -> Image.Image:
    """An image file as a PIL RGB image with decode_rgb's pixels: the loader of every evaluation folder."""
    return Image.fromarray(decode_rgb(Path(path).read_bytes()).permute(1, 2, 0).contiguous().numpy())


def undecodable(data: bytes) -> str | None:
    """Why the bytes cannot be decoded (the decoder's own words), or None when decode_rgb reads them."""
    try:
        decode_rgb(data)
    except Exception as error:  # noqa: BLE001 - any failure of a decoder means the same: not an image
        return decoder_words(error)
    return None


def decoder_words(error: Exception) -> str:
    """The decoder's message without its source location or object addresses."""
    text = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    if ".cpp:" in text:  # torchvision: "decode_jpeg, <source>.cpp:171, Image is incomplete or truncated"
        text = text.rsplit(".cpp:", 1)[1].split(", ", 1)[-1]
    return re.sub(r"\s*<[^>]*>", "", text)  # PIL: "cannot identify image file <_io.BytesIO object at 0x...>"
