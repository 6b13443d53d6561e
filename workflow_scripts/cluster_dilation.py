"""Rule cluster_dilation: measure this machine's TT kernel rate; write the dilation and link rates."""

from ecorec.cluster.settings import dilation_record
from ecorec.utils import setup_logging, write_json_atomic

setup_logging(snakemake.log[0])
record = dilation_record(snakemake.params.cluster)
write_json_atomic(snakemake.output[0], record)
