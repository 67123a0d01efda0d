"""Where WordNet 3.0 comes from, and copying it under a private nltk_data root (see imagenet_sd.prompts.wordnet).

First found wins: an nltk_data folder the user already has (config `wordnet.nltk_data`, else the roots in
the NLTK_DATA environment variable), Debian's `wordnet-base` + `wordnet-sense-index` files, or, on a machine
with internet, `nltk.download('wordnet')` into the project's resources. The files are copied, never linked
(NLTK refuses symlinks that leave its root); `lexnames`, which Debian lacks, is written from the list below.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from imagenet_sd.runtime import atomic_path

log = logging.getLogger("imagenet_sd.prompts.wordnet")


# The files WordNetCorpusReader opens (nltk.corpus.reader.wordnet.WordNetCorpusReader._FILES), lexnames
# excluded: it is written last, as the marker that the folder is complete.
DATA_FILES = (
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)
OPTIONAL_FILES = ("LICENSE", "README", "citation.bib")  # shipped by nltk.download('wordnet'); copied if present

# WordNet 3.0's lexicographer files: number, name, syntactic category (1 noun, 2 verb, 3 adjective,
# 4 adverb). Checked line by line against lexnames.5WN of Debian's wordnet-base 3.0.
LEXNAMES = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)
CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

DEBIAN_DIR = "/usr/share/wordnet"
HOW_TO_GET = (
    "Three ways to provide WordNet 3.0: (1) an nltk_data folder holding corpora/wordnet or "
    "corpora/wordnet.zip, named by the NLTK_DATA environment variable or config wordnet.nltk_data (made on "
    "any machine with internet by `python -m nltk.downloader -d /some/nltk_data wordnet`, i.e. "
    "nltk.download('wordnet', download_dir='/some/nltk_data')); (2) Debian's files: "
    "`sudo apt-get install wordnet-base wordnet-sense-index` (they fill /usr/share/wordnet; set config "
    "wordnet.debian_dir if they live elsewhere); (3) run the `wordnet` rule once on a machine with internet, "
    "such as a login node (`snakemake resources/nltk_data/corpora/wordnet/lexnames`): it downloads WordNet "
    "into resources/nltk_data itself."
)


class WordNetError(RuntimeError):
    """WordNet is missing or incomplete, or a wnid is not a noun synset. The message says what to do."""


def lexnames_text() -> str:
    """The `lexnames` file: `NN<TAB>name<TAB>category`, one line per lexicographer file."""
    return "".join(f"{i:02d}\t{name}\t{CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def wordnet_dir(nltk_data_root: str | Path) -> Path:
    return Path(nltk_data_root) / "corpora" / "wordnet"


def nltk_root_of(marker: str | Path) -> Path:
    """The nltk_data root of a materialised WordNet, from its marker <root>/corpora/wordnet/lexnames."""
    marker = Path(marker)
    if marker.name != "lexnames" or marker.parent.name != "wordnet" or marker.parent.parent.name != "corpora":
        raise WordNetError(f"{marker} is not a WordNet marker <nltk_data>/corpora/wordnet/lexnames")
    return marker.parents[2]


def _copy(src: Path, dest: Path) -> None:
    """A plain copy under a temporary name, renamed into place (NLTK refuses symlinks and hard links)."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def _from_folder(src: Path, dest: Path, lexnames: str | None) -> str:
    missing = [f for f in DATA_FILES if not (src / f).is_file()]
    if missing:
        hint = " (index.sense comes with Debian's wordnet-sense-index)" if missing == ["index.sense"] else ""
        raise WordNetError(f"WordNet folder {src} lacks {', '.join(missing)}{hint}. {HOW_TO_GET}")
    for name in DATA_FILES + OPTIONAL_FILES:
        if (src / name).is_file():
            _copy(src / name, dest / name)
    if lexnames is None:
        lexnames = (src / "lexnames").read_text() if (src / "lexnames").is_file() else lexnames_text()
    return lexnames


def _from_zip(src: Path, dest: Path) -> str:
    """nltk.download's corpora/wordnet.zip: members wordnet/<file>; only the known names are extracted."""
    with zipfile.ZipFile(src) as zf:
        members = {Path(m).name: m for m in zf.namelist() if m.startswith("wordnet/") and not m.endswith("/")}
        missing = [f for f in DATA_FILES if f not in members]
        if missing:
            raise WordNetError(f"{src} lacks {', '.join(missing)}. {HOW_TO_GET}")
        for name in DATA_FILES + OPTIONAL_FILES:
            if name in members:
                with atomic_path(dest / name) as tmp, zf.open(members[name]) as f_in, open(tmp, "wb") as f_out:
                    shutil.copyfileobj(f_in, f_out)
        return zf.read(members["lexnames"]).decode() if "lexnames" in members else lexnames_text()


def nltk_data_roots(environ=None) -> list[Path]:
    """The nltk_data roots named by the NLTK_DATA environment variable (os.pathsep-separated), in order."""
    value = (os.environ if environ is None else environ).get("NLTK_DATA", "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def _in_nltk_data(root: Path) -> Path | None:
    """corpora/wordnet (a folder with data.noun) or corpora/wordnet.zip under an nltk_data root, if any."""
    folder = wordnet_dir(root)
    if (folder / "data.noun").is_file():
        return folder
    archive = folder.with_suffix(".zip")
    return archive if archive.is_file() else None


def find_source(
    *, nltk_data: str | Path | None = None, debian_dir: str | Path = DEBIAN_DIR, environ=None
) -> tuple[str, Path] | None:
    """(kind, path) of the first WordNet on disk: config nltk_data, NLTK_DATA's roots, Debian's files.

    None when there is none (the caller may then download). A config `nltk_data` that holds no WordNet is
    an error rather than a reason to look elsewhere: the user named that folder on purpose.
    """
    if nltk_data:
        found = _in_nltk_data(Path(nltk_data))
        if found is None:
            raise WordNetError(
                f"config wordnet.nltk_data is {nltk_data}, but neither {wordnet_dir(nltk_data)} "
                f"nor {wordnet_dir(nltk_data).with_suffix('.zip')} exists. {HOW_TO_GET}"
            )
        return "config wordnet.nltk_data", found
    for root in nltk_data_roots(environ):
        found = _in_nltk_data(root)
        if found is not None:
            return "NLTK_DATA", found
    if (Path(debian_dir) / "data.noun").is_file():
        return "Debian's files", Path(debian_dir)
    return None


def _download(dest_root: Path, index_url: str | None) -> tuple[Path, Path]:
    """nltk.download('wordnet') into a fresh folder under `dest_root`: (that folder, what it holds)."""
    import nltk.downloader

    dest_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".download-", dir=dest_root))
    try:
        ok = nltk.downloader.Downloader(server_index_url=index_url).download(
            "wordnet", download_dir=str(folder), quiet=True, raise_on_error=True
        )
        found = _in_nltk_data(folder) if ok else None
        if found is None:
            raise WordNetError("nltk.download('wordnet') reported a failure")
    except Exception as error:
        shutil.rmtree(folder, ignore_errors=True)
        reason = error if isinstance(error, WordNetError) else f"{type(error).__name__}: {error}"
        raise WordNetError(
            f"WordNet 3.0 not found on this machine (no config wordnet.nltk_data, no WordNet "
            f"in NLTK_DATA, no Debian files), and downloading it failed ({reason}). "
            f"{HOW_TO_GET}"
        ) from None
    return folder, found


def materialise(
    root: str | Path,
    *,
    nltk_data: str | Path | None = None,
    debian_dir: str | Path = DEBIAN_DIR,
    environ=None,
    index_url: str | None = None,
) -> Path:
    """Copy WordNet 3.0 into `root`/corpora/wordnet and return the path of its `lexnames`, written last.

    Source: the first of find_source's, else nltk.download('wordnet') from NLTK's data server (`index_url`,
    default NLTK's) into a temporary folder under `root`, removed once copied. Raises WordNetError naming
    the three ways to provide WordNet when there is none and the download fails.
    """
    dest = wordnet_dir(root)
    marker = dest / "lexnames"
    marker.unlink(missing_ok=True)  # a stale marker must not vouch for files about to be replaced
    found = find_source(nltk_data=nltk_data, debian_dir=debian_dir, environ=environ)
    download = None
    if found is None:
        log.info("no WordNet on this machine: downloading it with nltk.download('wordnet')")
        download, path = _download(Path(root), index_url)
        found = ("nltk.download", path)
    kind, path = found
    dest.mkdir(parents=True, exist_ok=True)
    try:
        log.info("copying WordNet from %s: %s", kind, path)
        if path.suffix == ".zip":
            lexnames = _from_zip(path, dest)
        else:  # Debian ships no lexnames; NLTK's folders do, and it is the same fixed list
            lexnames = _from_folder(path, dest, lexnames_text() if kind == "Debian's files" else None)
    finally:
        if download is not None:
            shutil.rmtree(download, ignore_errors=True)
    version = check_wordnet_files(dest)
    with atomic_path(marker) as tmp:
        tmp.write_text(lexnames)
    log.info("WordNet %s ready in %s (from %s)", version, dest, kind)
    return marker


def check_wordnet_files(folder: Path) -> str:
    """The WordNet version of a copied folder, after checking it is 3.0 (wnids are 3.0 offsets).

    Reads the files as NLTK does (the version from data.adj's licence header, synset `entity` at its
    3.0 offset) without building NLTK's in-memory index, which takes seconds.
    """
    with open(folder / "data.adj", encoding="utf-8") as f:
        header = "".join(line for line, _ in zip(f, range(40)))
    match = re.search(r"Word[nN]et (\d+\+?|\d+\.\d+) Copyright", header)
    version = match.group(1) if match else "unknown"
    with open(folder / "data.noun", "rb") as f:
        f.seek(1740)
        entity = f.read(30)
    if version != "3.0" or not entity.startswith(b"00001740 03 n 01 entity "):
        raise WordNetError(
            f"WordNet in {folder} is version {version}, not 3.0 (wnids are WordNet 3.0 offsets). {HOW_TO_GET}"
        )
    return version
