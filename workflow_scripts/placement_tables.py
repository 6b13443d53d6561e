"""DreamShard's table features and the FLOP model's statistics of a dataset (rule `placement_tables`)."""

import contextlib

from ecorec.bench.placement.study import build_table_stats, write_frame
from ecorec.utils import setup_logging


def main(dataset, output, log_file, params):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        frame = build_table_stats(
            dataset,
            batch_size=int(params.batch_size),
            num_batches=int(params.num_batches),
            split=params.split,
            tt_ranks=list(params.tt_ranks),
        )
        write_frame(frame, output)
        logger.info("%d tables -> %s", frame.height, output)


main(snakemake.input.dataset, snakemake.output[0], snakemake.log[0], snakemake.params)
