"""WordNet 3.0 for NLTK: found, materialised under a private nltk_data root, and read from that root only.

Where it comes from, first found wins: an nltk_data folder the user already has (config `wordnet.nltk_data`,
else the roots in the NLTK_DATA environment variable), Debian's `wordnet-base` + `wordnet-sense-index`
files, or, on a machine with internet, `nltk.download('wordnet')` into the project's resources. All are the
same WordNet 3.0 data files, so prompts do not depend on the source.

NLTK 3.10 reads corpora only from roots on `nltk.data.path` / `NLTK_DATA` and refuses symlinks that leave
the root, so the files are copied (never linked). Debian's files hold everything NLTK needs except
`lexnames`, WordNet's fixed list of lexicographer files (man page lexnames.5WN), written from the list in
imagenet_sd/prompts/wordnet_sources.py.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

from imagenet_sd.paths import WNID_RE
from imagenet_sd.prompts.wordnet_sources import (  # noqa: F401 - the sources side, importable from here too
    DATA_FILES,
    DEBIAN_DIR,
    HOW_TO_GET,
    LEXNAMES,
    WordNetError,
    check_wordnet_files,
    find_source,
    lexnames_text,
    materialise,
    nltk_data_roots,
    nltk_root_of,
    wordnet_dir,
)

log = logging.getLogger(__name__)


def open_wordnet(nltk_data_root: str | Path):
    """An NLTK WordNetCorpusReader over `nltk_data_root`/corpora/wordnet, and no other root.

    Cached per root within a process (loading NLTK's lemma index takes seconds).
    """
    root = Path(nltk_data_root).resolve()
    folder = wordnet_dir(root)
    if not (folder / "lexnames").is_file():
        raise WordNetError(
            f"no complete WordNet under {root} ({folder / 'lexnames'} missing); the `wordnet` rule materialises it"
        )
    return _open_reader(str(root))


@functools.lru_cache(maxsize=4)
def _open_reader(root: str):
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from nltk.data import FileSystemPathPointer

    class WordNet30Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            # NLTK maps the synsets of whatever `corpora/wordnet` it finds on nltk.data.path onto this one,
            # for Open Multilingual WordNet. We read WordNet 3.0 alone, without OMW: no mapping, no second
            # root consulted, and half the load time saved.
            return None

    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)  # NLTK's sandbox reads only from its data roots
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        return WordNet30Reader(FileSystemPathPointer(str(wordnet_dir(root))), None)


def synset_of(wn, wnid: str):
    """The noun synset of an ImageNet-style wnid (`n` + 8-digit byte offset into data.noun)."""
    if not WNID_RE.match(wnid or ""):
        raise WordNetError(f"{wnid!r} is not a wnid: expected `n` followed by 8 digits, like n01440764")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            synset = wn.synset_from_pos_and_offset("n", int(wnid[1:]))
        except Exception:  # an offset past the end of data.noun, or inside a line
            synset = None
    if synset is None:
        raise WordNetError(
            f"{wnid} is not a WordNet 3.0 noun synset (no synset starts at offset {int(wnid[1:])} of data.noun)"
        )
    return synset


def hypernyms_in_file_order(wn, synset) -> list:
    """Direct hypernyms (instance hypernyms for instances) in data.noun's pointer order.

    NLTK keeps pointers in a set, whose order changes with Python's hash seed; the file order is the
    lexicographers' and is stable, so "the first hypernym" means the first in the file.
    """
    with open(Path(wn.root.path) / "data.noun", "rb") as f:
        f.seek(synset.offset())
        fields = f.readline().decode().split()
    n_words = int(fields[3], 16)
    at = 4 + 2 * n_words
    n_pointers = int(fields[at])
    pointers = [fields[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(n_pointers)]
    for symbol in ("@", "@i"):
        found = [wn.synset_from_pos_and_offset(pos, int(offset)) for sym, offset, pos, _ in pointers if sym == symbol]
        if found:
            return found
    return []


def wordnet_data_noun(config: dict, environ=None) -> Path | None:
    """data.noun of the WordNet this config will use, if it is already on disk as a plain file (for early
    wnid checks, before any job runs): the materialised copy first, then find_source's folders in order."""
    wordnet = config.get("wordnet", {})
    candidates = [Path("resources/nltk_data/corpora/wordnet/data.noun")]
    if wordnet.get("nltk_data"):
        candidates.append(wordnet_dir(wordnet["nltk_data"]) / "data.noun")
    else:
        candidates += [wordnet_dir(root) / "data.noun" for root in nltk_data_roots(environ)]
        candidates.append(Path(wordnet.get("debian_dir", DEBIAN_DIR)) / "data.noun")
    return next((p for p in candidates if p.is_file()), None)


def unknown_wnids(wnids, data_noun: Path) -> list[str]:
    """wnids whose offset is not the start of a synset line in data.noun (n + byte offset = wnid)."""
    bad = []
    with open(data_noun, "rb") as f:
        size = f.seek(0, 2)
        for wnid in wnids:
            offset = int(wnid[1:])
            if offset >= size:
                bad.append(wnid)
                continue
            # A synset line starts at the byte offset its id names, right after a newline.
            f.seek(max(offset - 1, 0))
            head = f.read(10 if offset else 9)
            expected = (b"\n" if offset else b"") + wnid[1:].encode() + b" "
            if head != expected:
                bad.append(wnid)
    return bad
