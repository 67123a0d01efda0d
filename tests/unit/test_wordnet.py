"""WordNet 3.0 for NLTK: found (config nltk_data, NLTK_DATA, Debian's files, nltk.download), materialised, read
from that root only."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import load_script

from imagenet_sd.prompts.wordnet import (
    DATA_FILES,
    LEXNAMES,
    WordNetError,
    find_source,
    hypernyms_in_file_order,
    lexnames_text,
    materialise,
    nltk_root_of,
    open_wordnet,
    synset_of,
    wordnet_data_noun,
    wordnet_dir,
)

REPO = Path(__file__).resolve().parents[2]
DEBIAN = Path("/usr/share/wordnet")
MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")

NO_DEBIAN = "Debian's wordnet-base is not installed (apt-get install wordnet-base wordnet-sense-index)"
needs_debian = pytest.mark.skipif(not (DEBIAN / "data.noun").is_file(), reason=NO_DEBIAN)
NOWHERE = "file:///nonexistent/nltk_data/index.xml"  # an NLTK data server that cannot answer, as offline


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """WordNet materialised from Debian by the rule's script."""
    if not (DEBIAN / "data.noun").is_file():
        pytest.skip(NO_DEBIAN)
    root = tmp_path_factory.mktemp("wn") / "nltk_data"
    load_script("wordnet").main(
        marker=str(root / "corpora/wordnet/lexnames"), nltk_data=None, debian_dir=str(DEBIAN), environ={}
    )
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
    with gzip.open(MAN_PAGE, "rt") as page:
        table = re.findall(r"^(\d\d)\t(\S+) *\t", page.read(), re.M)
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
    for _, wnid, first_lemma, definition, _hyper_first, _, hyper_wnid in rows[::25]:
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


@pytest.mark.parametrize(
    "wnid, message",
    [
        ("n02012850", "n02012850 is not a WordNet 3.0 noun synset"),  # inside a line
        ("n99999999", "n99999999 is not a WordNet 3.0 noun synset"),  # past the end of data.noun
        ("v01234567", "is not a wnid"),
        ("n123", "is not a wnid"),
    ],
)
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


def test_no_wordnet_anywhere_and_offline_names_the_three_ways_out(tmp_path):
    with pytest.raises(WordNetError) as error:
        materialise(
            tmp_path / "out",
            nltk_data=None,
            debian_dir=tmp_path / "empty",
            environ={"NLTK_DATA": str(tmp_path)},
            index_url=NOWHERE,
        )
    message = str(error.value)
    assert "downloading it failed" in message and "nonexistent" in message  # why the download failed
    assert "NLTK_DATA" in message and "wordnet.nltk_data" in message  # 1: an nltk_data folder
    assert "apt-get install wordnet-base wordnet-sense-index" in message  # 2: Debian's files
    assert "`wordnet` rule once on a machine with internet" in message  # 3: download on a login node
    assert not (tmp_path / "out/corpora/wordnet/lexnames").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # the download folder is gone
    with pytest.raises(WordNetError, match="config wordnet.nltk_data is .*nowhere"):
        materialise(tmp_path / "out", nltk_data=tmp_path / "nowhere")


def test_missing_sense_index_is_named_and_leaves_no_marker(tmp_path):
    partial = tmp_path / "debian"
    partial.mkdir()
    for name in DATA_FILES:
        if name != "index.sense":
            (partial / name).write_bytes(b"")
    dest = tmp_path / "out"
    with pytest.raises(WordNetError, match="index.sense.*wordnet-sense-index"):
        materialise(dest, debian_dir=partial, environ={})
    assert not (wordnet_dir(dest) / "lexnames").exists()


@needs_debian
def test_not_wordnet_30_leaves_no_marker(tmp_path):
    fake = tmp_path / "debian"
    shutil.copytree(DEBIAN, fake, ignore=shutil.ignore_patterns("data.noun", "data.verb", "index.*", "cntlist*"))
    for name in DATA_FILES:
        if not (fake / name).exists():
            (fake / name).write_text("  1 WordNet 2.1 Copyright 2005 by Princeton University.\n")
    (fake / "data.adj").write_text("  1 WordNet 2.1 Copyright 2005 by Princeton University.\n")
    dest = tmp_path / "out"
    with pytest.raises(WordNetError, match="version 2.1, not 3.0"):
        materialise(dest, debian_dir=fake, environ={})
    assert not (wordnet_dir(dest) / "lexnames").exists()


def test_marker_names_the_root(tmp_path):
    assert nltk_root_of("resources/nltk_data/corpora/wordnet/lexnames") == Path("resources/nltk_data")
    with pytest.raises(WordNetError, match="not a WordNet marker"):
        nltk_root_of("resources/nltk_data/wordnet/lexnames")


def test_open_wordnet_refuses_an_incomplete_root(tmp_path):
    with pytest.raises(WordNetError, match="lexnames"):
        open_wordnet(tmp_path)


# --- where WordNet comes from ----------------------------------------------------------------------------


def _nltk_data_folder(root: Path, dest: Path) -> Path:
    """An nltk_data root holding corpora/wordnet/ as nltk.download leaves it, made from `root`'s files."""
    shutil.copytree(wordnet_dir(root), wordnet_dir(dest))
    return dest


def _nltk_data_zip(root: Path, dest: Path) -> Path:
    """An nltk_data root holding only corpora/wordnet.zip, as NLTK's data server ships it."""
    (dest / "corpora").mkdir(parents=True)
    with zipfile.ZipFile(dest / "corpora/wordnet.zip", "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(wordnet_dir(root).iterdir()):
            zf.write(path, f"wordnet/{path.name}")
    return dest


SOURCES = ("config", "NLTK_DATA", "debian")


@pytest.mark.parametrize(
    "present",
    [set(c) for n in range(4) for c in itertools.combinations(SOURCES, n)],
    ids=lambda present: "+".join(sorted(present)) or "none",
)
def test_the_first_source_present_serves(root, tmp_path, present):
    """Order: config wordnet.nltk_data, the roots of NLTK_DATA (the first holding WordNet), Debian's files."""
    config = _nltk_data_folder(root, tmp_path / "config") if "config" in present else None
    empty_root = tmp_path / "empty-nltk-data"  # on NLTK_DATA, holding no WordNet: skipped, not an error
    env_root = _nltk_data_zip(root, tmp_path / "env") if "NLTK_DATA" in present else tmp_path / "absent"
    environ = {"NLTK_DATA": os.pathsep.join([str(empty_root), str(env_root)])}
    debian = DEBIAN if "debian" in present else tmp_path / "no-debian"
    found = find_source(nltk_data=config, debian_dir=debian, environ=environ)
    expected = {
        "config": ("config wordnet.nltk_data", wordnet_dir(tmp_path / "config")),
        "NLTK_DATA": ("NLTK_DATA", wordnet_dir(env_root).with_suffix(".zip")),
        "debian": ("Debian's files", DEBIAN),
    }
    first = next((s for s in SOURCES if s in present), None)
    assert found == (expected[first] if first else None)
    if first is None:  # nothing on disk and offline: materialise falls back to downloading, which fails
        with pytest.raises(WordNetError, match="downloading it failed"):
            materialise(tmp_path / "out", debian_dir=debian, environ=environ, index_url=NOWHERE)
        return
    marker = materialise(tmp_path / "out", nltk_data=config, debian_dir=debian, environ=environ)
    assert (wordnet_dir(tmp_path / "out") / "data.noun").read_bytes() == (DEBIAN / "data.noun").read_bytes()
    assert marker.read_text() == lexnames_text()


def _data_server(root: Path, server: Path) -> str:
    """A local NLTK data server laid out as NLTK's (index.xml, packages/corpora/wordnet.zip) serving `root`'s
    WordNet; returns its index URL."""
    _nltk_data_zip(root, server / "packages")
    archive = server / "packages/corpora/wordnet.zip"
    data = archive.read_bytes()
    unzipped = sum(p.stat().st_size for p in wordnet_dir(root).iterdir())
    (server / "index.xml").write_text(
        '<?xml version="1.0"?>\n<nltk_data><packages>\n'
        f'<package id="wordnet" name="WordNet" subdir="corpora" url="{archive.as_uri()}" size="{len(data)}" '
        f'unzipped_size="{unzipped}" checksum="{hashlib.md5(data).hexdigest()}" '
        f'sha256_checksum="{hashlib.sha256(data).hexdigest()}" unzip="1"/>\n'
        "</packages><collections></collections></nltk_data>\n"
    )
    return (server / "index.xml").as_uri()


def test_with_nothing_on_disk_the_rule_downloads_into_the_projects_resources(root, tmp_path, monkeypatch):
    """The real nltk.download, from a data server on this machine instead of NLTK's (tests run offline).
    NLTK reads file:// URLs only under its data roots, so the server's folder is put on NLTK_DATA; holding
    no corpora/wordnet itself, it is no source."""
    server = tmp_path / "server"
    index_url = _data_server(root, server)
    monkeypatch.setenv("NLTK_DATA", str(server))
    resources = tmp_path / "resources/nltk_data"
    assert find_source(debian_dir=tmp_path / "no-debian") is None
    marker = load_script("wordnet").main(
        marker=str(wordnet_dir(resources) / "lexnames"), debian_dir=str(tmp_path / "no-debian"), index_url=index_url
    )
    for name in (*DATA_FILES, "lexnames"):
        assert (wordnet_dir(resources) / name).read_bytes() == (wordnet_dir(root) / name).read_bytes(), name
    assert marker == wordnet_dir(resources) / "lexnames"
    assert sorted(p.name for p in resources.iterdir()) == ["corpora"]  # the download folder was removed
    assert sorted(p.name for p in (resources / "corpora").iterdir()) == ["wordnet"]


def test_prompts_are_identical_whichever_source_served(root, tmp_path):
    """Debian's files (the `root` fixture) and NLTK's wordnet.zip made from them: the same prompt files."""
    main = load_script("prompts").main
    scenes = str(REPO / "data/places365_categories.txt")
    recipes = [
        {"name": family, "recipes": {family: {"family": family, "scenes": scenes}}}
        for family in ("c", "c, d_c", "c, h_c", "c, h_c inside b")
    ]
    wnids = [line.split("\t")[0] for line in (REPO / "config/sheets/demo.tsv").read_text().splitlines()[1:]]
    archive = _nltk_data_zip(root, tmp_path / "zip-src")
    materialise(tmp_path / "zip", environ={"NLTK_DATA": str(archive)}, debian_dir=tmp_path / "no-debian")
    assert (wordnet_dir(tmp_path / "zip") / "lexnames").read_text() == lexnames_text()
    outputs = {}
    for source, nltk_data in {"debian": root, "zip": tmp_path / "zip"}.items():
        for wnid, recipe in itertools.product(wnids, recipes):
            out = tmp_path / "prompts" / source / f"{recipe['name']}-{wnid}.json"
            main(output=str(out), wnid=wnid, name=None, recipe=recipe, seed=0, nltk_data=str(nltk_data))
            outputs.setdefault(out.name, {})[source] = out.read_bytes()
    assert len(outputs) == len(wnids) * len(recipes) == 24
    for name, by_source in outputs.items():
        assert by_source["debian"] == by_source["zip"], name


def test_early_wnid_checks_read_the_wordnet_the_rule_will_use(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env_root = _nltk_data_folder(root, tmp_path / "env")
    none = {"wordnet": {"debian_dir": str(tmp_path / "no-debian")}}
    assert wordnet_data_noun(none, environ={}) is None
    assert wordnet_data_noun(none, environ={"NLTK_DATA": str(env_root)}) == wordnet_dir(env_root) / "data.noun"
    assert wordnet_data_noun({"wordnet": {}}, environ={}) == DEBIAN / "data.noun"
    materialise(tmp_path / "resources/nltk_data", debian_dir=DEBIAN, environ={})
    assert wordnet_data_noun(none, environ={}) == Path("resources/nltk_data/corpora/wordnet/data.noun")
