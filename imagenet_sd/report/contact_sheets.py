"""Contact sheets: for a fixed, small sample of classes, a row of generated images with their prompts below.

A sheet reads only the first images of one chunk tar per sampled class (tar members are in index order, so
reading stops after a few kilobytes), never a whole clone: planning or building the report of a 1,000-class,
1.3M-image clone costs the same as the demo's. Sheets are JPEGs re-encoded at lower quality until they fit a
byte budget, so the report stays small.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from imagenet_sd.generate.chunk_check import DamagedChunk, size_problem

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)
QUALITIES = (85, 75, 65, 55, 45, 35, 25)


@dataclass(frozen=True)
class Tile:
    image: Image.Image
    prompt: str
    failed: bool = False


@dataclass(frozen=True)
class SheetSize:
    """How big a sheet is: images per row, the thumbnails' side in pixels, and the JPEG's byte budget."""

    images: int
    thumb: int
    max_bytes: int

    @classmethod
    def of(cls, settings: dict) -> SheetSize:
        """From the report's or the quality step's settings: sheet_images, thumbnail, sheet_max_kb."""
        return cls(settings["sheet_images"], settings["thumbnail"], settings["sheet_max_kb"] * 1024)


@dataclass(frozen=True)
class SheetRow:
    label: str  # class (and, on a comparison sheet, which clone)
    tiles: list[Tile]


def sample_indices(n_classes: int, max_classes: int) -> list[int]:
    """Evenly spaced class indices (first and last included): a fixed sample that does not depend on the run."""
    if n_classes <= max_classes:
        return list(range(n_classes))
    if max_classes == 1:
        return [0]
    return sorted({round(i * (n_classes - 1) / (max_classes - 1)) for i in range(max_classes)})


def read_tiles(tar_path: str | Path, count: int, thumb: int) -> list[Tile]:
    """The first `count` images of a chunk tar (and the prompt from each image's JSON), as thumbnails. The
    chunk's size is checked against its stats record (its sha256 would need the whole file: pack checks it)."""
    problem = size_problem(tar_path)
    if problem:
        raise DamagedChunk(tar_path, problem)
    try:
        return first_tiles(tar_path, count, thumb)
    except (tarfile.TarError, EOFError) as error:
        raise DamagedChunk(tar_path, f"not a readable tar ({error})") from None


def first_tiles(tar_path: str | Path, count: int, thumb: int) -> list[Tile]:
    pending: dict[str, dict] = {}
    tiles: list[Tile] = []
    with tarfile.open(tar_path, "r|") as tar:  # streaming: stops reading the file once the sample is complete
        for info in tar:
            if not info.isfile():
                continue
            key, _, ext = Path(info.name).name.partition(".")
            if ext not in ("jpg", "json"):
                continue
            entry = pending.setdefault(key, {})
            entry[ext] = tar.extractfile(info).read()
            if len(entry) == 2:
                meta = json.loads(entry["json"])
                # Fit to the thumbnail box both ways: small demo images are enlarged to stay readable.
                image = ImageOps.contain(Image.open(io.BytesIO(entry["jpg"])).convert("RGB"), (thumb, thumb))
                tiles.append(Tile(image, meta.get("prompt", ""), bool(meta.get("failed"))))
                del pending[key]
                if len(tiles) >= count:
                    break
    return tiles


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(text: str, width_px: int, font, lines: int) -> list[str]:
    chars = max(8, int(width_px / (font.size * 0.55)))
    wrapped = textwrap.wrap(text, chars) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: chars - 1].rstrip() + "…"
    return wrapped


def render_sheet(rows: list[SheetRow], *, title: str, thumb: int, prompt_lines: int = 4) -> Image.Image:
    """Rows of thumbnails; each tile's prompt below it, each row's label on the left."""
    label_w, pad, text_size = 160, 6, 10
    font, bold = _font(text_size), _font(13)
    line_h = text_size + 3
    cell_w, cell_h = thumb + pad, thumb + pad + prompt_lines * line_h + pad
    columns = max((len(r.tiles) for r in rows), default=1)
    title_h = 28
    sheet = Image.new("RGB", (label_w + columns * cell_w + pad, title_h + len(rows) * cell_h + pad), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 7), title, fill=INK, font=bold)
    for r, row in enumerate(rows):
        top = title_h + r * cell_h
        for i, line in enumerate(_wrap(row.label, label_w - 2 * pad, bold, 5)):
            draw.text((pad, top + pad + i * 16), line, fill=INK, font=bold)
        for c, tile in enumerate(row.tiles):
            left = label_w + c * cell_w
            sheet.paste(tile.image, (left, top + pad))
            if tile.failed:
                w, h = tile.image.size
                draw.rectangle([left, top + pad, left + w - 1, top + pad + h - 1], outline=(200, 0, 0), width=3)
            for i, line in enumerate(_wrap(tile.prompt, thumb, font, prompt_lines)):
                draw.text((left, top + pad + thumb + 2 + i * line_h), line, fill=MUTED, font=font)
    return sheet


def save_within_budget(image: Image.Image, path: str | Path, max_bytes: int) -> int:
    """JPEG at the highest quality that fits `max_bytes` (halving the size if even the lowest does not)."""
    while True:
        for quality in QUALITIES:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality, optimize=True)
            if buffer.tell() <= max_bytes:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_bytes(buffer.getvalue())
                return buffer.tell()
        if min(image.size) < 64:
            raise ValueError(f"{path}: cannot fit the sheet in {max_bytes} bytes")
        image = image.resize((image.width // 2, image.height // 2), Image.LANCZOS)


def clone_rows(
    chunks: dict[str, str], labels: dict[str, str], images: int, thumb: int, prefix: str = ""
) -> dict[str, SheetRow]:
    """One row per class key: `chunks` maps class key -> its first train chunk tar."""
    return {key: SheetRow(prefix + labels[key], read_tiles(tar, images, thumb)) for key, tar in chunks.items()}


def contact_sheet(
    *, chunks: dict[str, str], labels: dict[str, str], title: str, output: str | Path, size: SheetSize
) -> int:
    """One clone: a row per sampled class. Returns the sheet's size in bytes."""
    rows = list(clone_rows(chunks, labels, size.images, size.thumb).values())
    return save_within_budget(render_sheet(rows, title=title, thumb=size.thumb), output, size.max_bytes)


def comparison_sheet(
    *,
    clones: dict[str, dict[str, str]],
    labels: dict[str, str],
    captions: dict[str, str],
    title: str,
    output: str | Path,
    size: SheetSize,
) -> int:
    """Several clones over the same classes: for each shared class, the clones' rows one under the other.

    clones: clone -> {class wnid -> first train chunk tar}; labels: wnid -> class label;
    captions: clone -> what differs (recipe, generator).
    """
    shared = [w for w in labels if all(w in chunks for chunks in clones.values())]
    if not shared:
        raise ValueError(f"{output}: clones {', '.join(clones)} share no sampled class")
    rows = []
    for wnid in shared:
        for clone, chunks in clones.items():
            rows.append(
                SheetRow(
                    f"{labels[wnid]}\n[{captions[clone]}]".replace("\n", " "),
                    read_tiles(chunks[wnid], size.images, size.thumb),
                )
            )
    return save_within_budget(render_sheet(rows, title=title, thumb=size.thumb), output, size.max_bytes)
