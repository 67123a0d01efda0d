"""WordNet 3.0 for NLTK: materialised from Debian's files or an nltk_data folder, read from that root only."""
from __future__ import annotations

import gzip
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import load_script

from imagenet_sd.wordnet import (DATA_FILES, LEXNAMES, WordNetError, hypernyms_in_file_order, lexnames_text,
                                 materialise, nltk_root_of, open_wordnet, synset_of, wordnet_dir)

REPO = Path(__file__).resolve().parents[1]
DEBIAN = Path("/usr/share/wordnet")
MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")

pytestmark = pytest.mark.skipif(not (DEBIAN / "data.noun").is_file(),
                                reason="Debian's wordnet-base is not installed (apt-get install wordnet-base wordnet-sense-index)")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """WordNet materialised from Debian by the rule's script."""
    root = tmp_path_factory.mktemp("wn") / "nltk_data"
    load_script("wordnet").main(marker=str(root / "corpora/wordnet/lexnames"), nltk_data=None, debian_dir=str(DEBIAN))
    return root


@pytest.fixture(scope="module")
def wn(root):
    return open_wordnet(root)


def test_lexnames_is_wordnets_fixed_list():
    lines = lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
    if not MAN_PAGE.is_file():
        pytest.skip("lexnames.5WN man page not installed")
    table = re.findall(r"^(\d\d)\t(\S+) *\t", gzip.open(MAN_PAGE, "rt").read(), re.M)
    assert [(int(n), name) for n, name in table] == list(enumerate(LEXNAMES))


def test_materialised_folder_is_plain_files_with_lexnames(root):
    folder = wordnet_dir(root)
    for name in (*DATA_FILES, "lexnames"):
        path = folder / name
        assert path.is_file() and not path.is_symlink(), name
        assert path.stat().st_nlink == 1, f"{name} is a hard link; NLTK refuses those"
    assert (folder / "lexnames").read_text() == lexnames_text()
    assert (folder / "data.noun").read_bytes() == (DEBIAN / "data.noun").read_bytes()
    assert not list(folder.glob(".*partial"))


def test_nltk_reads_it_and_wnids_map_to_synsets(wn):
    assert wn.get_version() == "3.0"
    bird, machine = synset_of(wn, "n02012849"), synset_of(wn, "n03126707")
    assert bird.lemma_names()[0] == machine.lemma_names()[0] == "crane"
    assert bird.lexname() == "noun.animal" and machine.lexname() == "noun.artifact"
    assert synset_of(wn, "n00001740").name() == "entity.n.01"


def test_imagenet_classes_match_the_derived_table(wn):
    """data/imagenet1k_wordnet.tsv was derived from the same WordNet: first lemma, gloss, first hypernym."""
    rows = [line.split("\t") for line in (REPO / "data/imagenet1k_wordnet.tsv").read_text().splitlines()[1:]]
    for _, wnid, first_lemma, definition, hyper_first, _, hyper_wnid in rows[::25]:
        synset = synset_of(wn, wnid)
        assert synset.lemma_names()[0].replace("_", " ") == first_lemma
        assert synset.definition() == definition
        first = hypernyms_in_file_order(wn, synset)[0]
        assert f"n{first.offset():08d}" == hyper_wnid


def test_first_hypernym_is_the_files_first(wn):
    dog = synset_of(wn, "n02084071")  # two hypernyms: canine first in data.noun, then domestic animal
    assert [h.name() for h in hypernyms_in_file_order(wn, dog)] == ["canine.n.02", "domestic_animal.n.01"]
    einstein = wn.synset("einstein.n.01")  # an instance: its instance hypernym stands in
    assert [h.name() for h in hypernyms_in_file_order(wn, einstein)] == ["physicist.n.01"]
    assert hypernyms_in_file_order(wn, synset_of(wn, "n00001740")) == []


@pytest.mark.parametrize("wnid, message", [
    ("n02012850", "n02012850 is not a WordNet 3.0 noun synset"),   # inside a line
    ("n99999999", "n99999999 is not a WordNet 3.0 noun synset"),   # past the end of data.noun
    ("v01234567", "is not a wnid"),
    ("n123", "is not a wnid"),
])
def test_bad_wnid_is_named(wn, wnid, message):
    with pytest.raises(WordNetError, match=message):
        synset_of(wn, wnid)


def test_from_an_nltk_data_folder(root, tmp_path):
    dest = tmp_path / "copy"
    marker = materialise(dest, nltk_data=root, debian_dir=tmp_path / "no-debian")
    assert marker == wordnet_dir(dest) / "lexnames"
    for name in (*DATA_FILES, "lexnames"):
        assert (wordnet_dir(dest) / name).read_bytes() == (wordnet_dir(root) / name).read_bytes(), name


def test_from_an_nltk_data_zip(root, tmp_path):
    source = tmp_path / "nltk_data"
    (source / "corpora").mkdir(parents=True)
    with zipfile.ZipFile(source / "corpora" / "wordnet.zip", "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(wordnet_dir(root).iterdir()):
            zf.write(path, f"wordnet/{path.name}")
    dest = tmp_path / "out"
    materialise(dest, nltk_data=source)
    for name in (*DATA_FILES, "lexnames"):
        assert (wordnet_dir(dest) / name).read_bytes() == (wordnet_dir(root) / name).read_bytes(), name


def test_no_wordnet_anywhere_says_how_to_get_it(tmp_path):
    with pytest.raises(WordNetError) as error:
        materialise(tmp_path / "out", nltk_data=None, debian_dir=tmp_path / "empty")
    assert "apt-get install wordnet-base wordnet-sense-index" in str(error.value)
    assert "nltk.download('wordnet'" in str(error.value) and "wordnet.nltk_data" in str(error.value)
    with pytest.raises(WordNetError, match="config wordnet.nltk_data is .*nowhere"):
        materialise(tmp_path / "out", nltk_data=tmp_path / "nowhere")
    assert not (tmp_path / "out/corpora/wordnet/lexnames").exists()


def test_missing_sense_index_is_named_and_leaves_no_marker(tmp_path):
    partial = tmp_path / "debian"
    partial.mkdir()
    for name in DATA_FILES:
        if name != "index.sense":
            (partial / name).write_bytes(b"")
    dest = tmp_path / "out"
    with pytest.raises(WordNetError, match="index.sense.*wordnet-sense-index"):
        materialise(dest, debian_dir=partial)
    assert not (wordnet_dir(dest) / "lexnames").exists()


def test_not_wordnet_30_leaves_no_marker(tmp_path):
    fake = tmp_path / "debian"
    shutil.copytree(DEBIAN, fake, ignore=shutil.ignore_patterns("data.noun", "data.verb", "index.*", "cntlist*"))
    for name in DATA_FILES:
        if not (fake / name).exists():
            (fake / name).write_text("  1 WordNet 2.1 Copyright 2005 by Princeton University.\n")
    (fake / "data.adj").write_text("  1 WordNet 2.1 Copyright 2005 by Princeton University.\n")
    dest = tmp_path / "out"
    with pytest.raises(WordNetError, match="version 2.1, not 3.0"):
        materialise(dest, debian_dir=fake)
    assert not (wordnet_dir(dest) / "lexnames").exists()


def test_marker_names_the_root(tmp_path):
    assert nltk_root_of("resources/nltk_data/corpora/wordnet/lexnames") == Path("resources/nltk_data")
    with pytest.raises(WordNetError, match="not a WordNet marker"):
        nltk_root_of("resources/nltk_data/wordnet/lexnames")


def test_open_wordnet_refuses_an_incomplete_root(tmp_path):
    with pytest.raises(WordNetError, match="lexnames"):
        open_wordnet(tmp_path)
