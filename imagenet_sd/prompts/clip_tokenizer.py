"""CLIP's real BPE tokenizer, written from the merges file open_clip ships, for transformers' CLIPTokenizer.

Stable Diffusion v1.x conditions on CLIP ViT-L/14's text encoder; its tokenizer is the one OpenAI released
with CLIP (https://github.com/openai/CLIP). Building it locally gives the demo and the tests the exact token
ids a real SD pipeline sees, with nothing downloaded.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("imagenet_sd.prompts.clip_tokenizer")

CLIP_CONTEXT = 77  # positions of CLIP's text encoder, start and end tokens included
CLIP_MERGES = 49152 - 256 - 2  # merges CLIP uses from its BPE file: 48,894
CLIP_SPECIAL = ("<|startoftext|>", "<|endoftext|>")  # ids 49406 and 49407, as in SD v1.x's tokenizer
CLIP_VOCAB_SIZE = 2 * 256 + CLIP_MERGES + len(CLIP_SPECIAL)  # 49,408
CLIP_BOS_ID, CLIP_EOS_ID = CLIP_VOCAB_SIZE - 2, CLIP_VOCAB_SIZE - 1


def clip_bpe_merges() -> list[str]:
    """The merges CLIP uses, from the BPE file open_clip ships (its first line is a header)."""
    from open_clip.tokenizer import default_bpe

    with gzip.open(default_bpe()) as bpe:
        lines = bpe.read().decode("utf-8").split("\n")
    return lines[1 : 1 + CLIP_MERGES]


def clip_vocabulary(merges: list[str]) -> list[str]:
    """CLIP's vocabulary in id order: byte symbols, the same with `</w>`, merged pairs, the special tokens."""
    from open_clip.tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    return symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + list(CLIP_SPECIAL)


def build_clip_tokenizer(dest: str | os.PathLike) -> Path:
    """Write CLIP's tokenizer (vocab.json, merges.txt, configs) for transformers' CLIPTokenizer into `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    merges = clip_bpe_merges()
    vocab = clip_vocabulary(merges)
    assert len(vocab) == CLIP_VOCAB_SIZE, len(vocab)
    start, end = CLIP_SPECIAL
    files = {
        "vocab.json": json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
        "special_tokens_map.json": json.dumps(
            {"bos_token": start, "eos_token": end, "pad_token": end, "unk_token": end}, indent=1, sort_keys=True
        ),
        "tokenizer_config.json": json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": CLIP_CONTEXT,
                "do_lower_case": True,
                "bos_token": start,
                "eos_token": end,
                "pad_token": end,
                "unk_token": end,
            },
            indent=1,
            sort_keys=True,
        ),
    }
    for name, text in files.items():
        (dest / name).write_text(text, encoding="utf-8")
    log.info("CLIP tokenizer written to %s", dest)
    return dest
