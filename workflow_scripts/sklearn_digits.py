"""scikit-learn's digits (real scans shipped with the package) -> an ImageFolder of wnid folders."""

import logging

from imagenet_sd.data.realdata import write_digits
from imagenet_sd.runtime import setup_logging

log = logging.getLogger("imagenet_sd.sklearn_digits")


def main(*, out_dir):
    counts = write_digits(out_dir)
    log.info("wrote %d images in %d class folders to %s", sum(counts.values()), len(counts), out_dir)
    return counts


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(out_dir=snakemake.output[0])
