"""Materialise WordNet 3.0 for NLTK under resources/nltk_data: from an existing nltk_data (config or
NLTK_DATA), Debian's files, or else nltk.download('wordnet') (this rule runs on the login node)."""

from imagenet_sd.prompts.wordnet import DEBIAN_DIR, materialise, nltk_root_of
from imagenet_sd.runtime import setup_logging


def main(*, marker, nltk_data=None, debian_dir=DEBIAN_DIR, environ=None, index_url=None):
    """Writes <root>/corpora/wordnet/*, the marker <root>/corpora/wordnet/lexnames last."""
    return materialise(
        nltk_root_of(marker), nltk_data=nltk_data, debian_dir=debian_dir, environ=environ, index_url=index_url
    )


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(marker=snakemake.output[0], nltk_data=snakemake.params.nltk_data, debian_dir=snakemake.params.debian_dir)
