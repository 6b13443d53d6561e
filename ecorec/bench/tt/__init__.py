"""Benchmark of the TT-EmbeddingBag algorithms against uncompressed baselines: ``python -m ecorec.bench tt``.

Variants (on each table of ``N`` rows, ``D`` columns, TT ranks ``r``, the same index batches for all):

- ``ecorec`` (``ecorec_m<M>`` for ``M > 1`` micro-batches), ``fbtt``, ``elrec``: :class:`TTEmbeddingBag`
  on the pure-torch backend with the same cores, the same ``--product-strategy`` and a fused SGD update in
  backward;
- ``ecorec_cuda`` (``ecorec_cuda_m<M>``): the same module on the CUDA kernels of ``kernels/``
  (``backend="cuda"``; CUDA devices only; built on first use);
- ``nn_embedding_bag``: ``nn.EmbeddingBag(sparse=True)`` + ``torch.optim.SGD`` (skipped above
  ``--max-dense-bytes``);
- ``fbgemm_tbe``: fbgemm's ``SplitTableBatchedEmbeddingBagsCodegen`` on HOST/CPU with ``EXACT_SGD`` (CPU only;
  skipped with a message where ``fbgemm_gpu`` is missing).

Defaults follow the device: on CPU every variant but ``ecorec_cuda`` at batch 4096; on CUDA
``ecorec_cuda``, ``ecorec``, ``fbtt``, ``elrec`` and ``nn_embedding_bag`` at batches 2048 ... 131072 (the
paper's figure 11 grid; ``N = 10^6``, ``D = 32``, ranks 32); indices from the calibrated ``synthetic``
generator where numpy and pyarrow are installed, else ``zipf`` (:func:`default_indices`).

Per batch size, table and variant: forward ms and forward+backward(+update) ms (median, p10, p90 and the
per-repeat samples of ``--repeats`` repeats after ``--warmup`` warm-ups, CUDA events on GPUs; the variants are
timed side by side, interleaved, in one process; repeat ``i`` uses batch ``i % --num-batches`` for every
variant and every table, so the sum over tables of repeat ``i`` is the paper's "all tables" time of that
repeat, :func:`sum_over_tables`), peak transient memory of one forward and of one training step
(:mod:`ecorec.bench.memory`), parameter and optimizer-state bytes, compression ratio, ``nnz``, ``U``, ``G``,
and two efficiency figures, each against a rate measured on the same device in the same run:

- GEMM: the TT FLOPs (:func:`ecorec.tt.tt_gemm_flops`) per second against ``torch.bmm`` on the same small GEMM
  shapes with pre-gathered operands (``efficiency_vs_bmm``);
- memory: the modelled traffic (:func:`ecorec.tt.costs.tt_memory_traffic`; for ``nn_embedding_bag`` the rows
  read and written) per second against a large device-to-device copy (``bandwidth_fraction``).

Rows go to ``--out`` as JSON lines (``{"config", "environment", "metrics"}``; the metrics name the ``table``
and its ``num_embeddings``, and the config holds that table's ``num_embeddings``), then a table, the
all-tables sums (several tables) and the ratios the paper claims are printed.

Index sources (``--indices``, :data:`INDEX_SOURCES`):

- ``zipf``: one table of ``--num-embeddings`` rows, bounded Zipf rows, hot rows scattered, bag lengths
  uniform in ``[0, 2 L]`` (:func:`ecorec.tt.testing.random_lookup`);
- ``synthetic``: one table of ``--num-embeddings`` rows from ``ecorec.data``'s calibrated generator
  (:func:`ecorec.data.synthetic_table_lookup`: reuse and pooling of ``--stats-file``, default the packaged
  Meta statistics; needs numpy and pyarrow);
- ``dataset``: the tables ``--tables`` (or the ``--largest-tables K`` with the most rows,
  :func:`largest_tables`; neither: all) of the Parquet dataset ``--dataset``, each with its own rows, on the
  first ``--num-batches`` batches of ``--split``. For every batch size the tables run one after the other,
  only one table's modules alive at a time, so peak memory is per table. Needs pyarrow (not torchrec).

The paper's figure 11 (27 largest tables, D = 32, ranks 32, B = 2048 ... 131072) is ``--indices dataset
--dataset DIR --largest-tables 27``; its table 1 (one table of 10^8 rows, ``nn.EmbeddingBag`` against TT) is
``--indices synthetic --num-embeddings 100000000`` (the dense baseline is skipped above
``--max-dense-bytes``). The module imports with torch alone; ``ecorec.data`` is imported by the sources that
need it.
"""

from ecorec.bench.tt.cli import build_parser, config_from_args, main
from ecorec.bench.tt.config import (
    BASELINES,
    CPU_BATCH_SIZES,
    CUDA_BATCH_SIZES,
    CUDA_VARIANTS,
    TT_ALGORITHMS,
    BenchError,
    TTBenchConfig,
    default_algorithms,
    default_batch_sizes,
    default_indices,
)
from ecorec.bench.tt.measure import benchmark_table, run_benchmark
from ecorec.bench.tt.report import format_all_tables, format_ratios, format_table
from ecorec.bench.tt.sources import (
    INDEX_SOURCES,
    SOURCE_ONLY_OPTIONS,
    BenchTable,
    check_source_options,
    dataset_source,
    generated_batches,
    largest_tables,
    resolve_tables,
    synthetic_source,
    zipf_source,
)
from ecorec.bench.tt.variants import (
    Variant,
    make_embedding_bag_variant,
    make_tbe_variant,
    make_tt_variant,
    make_variants,
)
from ecorec.records import sum_over_tables

__all__ = [
    "BASELINES",
    "CPU_BATCH_SIZES",
    "CUDA_BATCH_SIZES",
    "CUDA_VARIANTS",
    "INDEX_SOURCES",
    "TT_ALGORITHMS",
    "BenchError",
    "BenchTable",
    "SOURCE_ONLY_OPTIONS",
    "TTBenchConfig",
    "Variant",
    "benchmark_table",
    "build_parser",
    "check_source_options",
    "config_from_args",
    "dataset_source",
    "default_algorithms",
    "default_batch_sizes",
    "default_indices",
    "format_all_tables",
    "format_ratios",
    "format_table",
    "generated_batches",
    "largest_tables",
    "main",
    "make_embedding_bag_variant",
    "make_tbe_variant",
    "make_tt_variant",
    "make_variants",
    "resolve_tables",
    "run_benchmark",
    "sum_over_tables",
    "synthetic_source",
    "zipf_source",
]
