"""What one generated chunk is: the images [start, stop) of one class and split, named by prompt file,
generator and split, and stored as one tar of `{wnid}_{index:06d}.jpg` + `.json` pairs in index order.

- Each image has its own seed from (global seed, generator, recipe, class, split, index, attempt); with the
  generator's `common_noise`, from (global seed, class, split, index, attempt) only.
- The tar's bytes depend on names and contents only (fixed member metadata, sorted JSON keys).
- JPEG encoding and the tar are written from a background thread, so the GPU never waits for them.
"""

from __future__ import annotations

import io
import json
import queue
import tarfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from imagenet_sd.generate import guidance
from imagenet_sd.prompts.prompts import image_prompt
from imagenet_sd.runtime import add_tar_member
from imagenet_sd.seeds import common_image_seed, image_seed

QUEUED_BATCHES = 4  # batches the writer may lag behind before the GPU loop waits (bounds host memory)


@dataclass(frozen=True)
class ImageTask:
    index: int
    prompt: str
    seed: int
    attempt: int = 0
    guidance: float | None = None  # this image's scale when the generator mixes scales; None: the one scale


@dataclass(frozen=True)
class ChunkIdentity:
    """What names one chunk's images: it, and nothing else, determines prompts and seeds."""

    record: dict = field(hash=False)
    generator: str
    split: str
    common_noise: bool = False  # common random numbers: the noise ignores generator and recipe
    guidance_mixture: tuple[float, ...] = ()  # the scales drawn from per image; empty: one scale for all

    @classmethod
    def of_job(cls, record: dict, generator: str, split: str, settings: dict) -> ChunkIdentity:
        """The identity a generate job gives its chunk, from the generator's pixel settings."""
        mixture = guidance.scales(settings) if guidance.is_mixture(settings) else ()
        return cls(record, generator, split, bool(settings.get("common_noise")), mixture)

    def seed(self, index: int, attempt: int) -> int:
        r = self.record
        if self.common_noise:
            return common_image_seed(r["seed"], r["wnid"], self.split, index, attempt)
        return image_seed(r["seed"], self.generator, r["recipe"], r["wnid"], self.split, index, attempt)

    def task(self, index: int, attempt: int = 0) -> ImageTask:
        scale = guidance.draw(self.guidance_mixture, self.seed(index, 0)) if self.guidance_mixture else None
        prompt = image_prompt(self.record, self.split, index)
        return ImageTask(index, prompt, self.seed(index, attempt), attempt, scale)

    def retry(self, task: ImageTask) -> ImageTask:
        return replace(task, attempt=task.attempt + 1, seed=self.seed(task.index, task.attempt + 1))

    def key(self, index: int) -> str:
        return f"{self.record['wnid']}_{index:06d}"


@dataclass
class Rendered:
    task: ImageTask
    pixels: np.ndarray
    failure: str | None = None
    nsfw: bool | None = None  # the safety checker's verdict, when the generator's policy runs it


def encode_jpeg(pixels: np.ndarray, quality: int, storage_size: int | None) -> bytes:
    """JPEG bytes of uint8 (H, W, 3) pixels, first shrunk (Lanczos) so the short side is `storage_size`."""
    image = Image.fromarray(pixels)
    if storage_size:
        scale = storage_size / min(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def image_metadata(r: Rendered, identity: ChunkIdentity, settings: dict) -> dict:
    """The per-image JSON beside each JPEG: everything that made its pixels."""
    rec = identity.record
    # A mixture's drawn scale only: the JSON of a one-scale generator stays byte for byte as it was.
    drawn = {} if r.task.guidance is None else {"guidance_scale": r.task.guidance}
    checked = {} if r.nsfw is None else {"nsfw": r.nsfw}  # likewise without a safety-checker policy
    return {
        **drawn,
        **checked,
        "key": identity.key(r.task.index),
        "prompt": r.task.prompt,
        "seed": r.task.seed,
        "attempt": r.task.attempt,
        "index": r.task.index,
        "split": identity.split,
        "wnid": rec["wnid"],
        "class_key": rec["class_key"],
        "recipe": rec["recipe"],
        "generator": identity.generator,
        "settings": settings,
        "failed": r.failure,
    }


class ChunkWriter:
    """Writes rendered batches into a tar from a background thread: JPEG encoding off the GPU's path."""

    def __init__(self, path: str | Path, identity: ChunkIdentity, settings: dict):
        self.path, self.identity, self.settings = path, identity, settings
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES)
        self.error: BaseException | None = None
        self.busy = 0.0
        self.thread = threading.Thread(target=self._run, name="chunk-writer", daemon=True)
        self.thread.start()

    def put(self, results: list[Rendered]) -> None:
        self._raise_error()
        self.queue.put(results)

    def close(self) -> None:
        """Wait until everything queued is in the tar and the tar is closed."""
        self.queue.put(None)
        self.thread.join()
        self._raise_error()

    def _raise_error(self):
        if self.error is not None:
            raise RuntimeError("the chunk writer failed") from self.error

    def _run(self):
        closed = False  # the end-of-queue mark was taken: a failure after it (closing the tar) must not wait
        try:
            with tarfile.open(self.path, "w", format=tarfile.USTAR_FORMAT) as tar:
                while (results := self.queue.get()) is not None:
                    started = time.perf_counter()
                    for r in results:
                        self._write(tar, r)
                    self.busy += time.perf_counter() - started
                closed = True
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.error = error
            while not closed and self.queue.get() is not None:  # unblock a producer waiting on a full queue
                pass

    def _write(self, tar, r: Rendered):
        key = self.identity.key(r.task.index)
        jpeg = encode_jpeg(r.pixels, self.settings["jpeg_quality"], self.settings.get("storage_size"))
        meta = json.dumps(image_metadata(r, self.identity, self.settings), sort_keys=True, ensure_ascii=False)
        add_tar_member(tar, f"{key}.jpg", jpeg)
        add_tar_member(tar, f"{key}.json", meta.encode("utf-8"))
