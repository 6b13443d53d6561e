"""EcoRec: TT-compressed, distributed DLRM training (SC'24), re-implemented in PyTorch.

Subpackages (an import only goes down the list):

- ``ecorec.train``, ``ecorec.bench``, ``ecorec.plots``: entry points (``python -m ecorec.<name>``).
- ``ecorec.parallel``, ``ecorec.planner``: distributed modes; cost model and sharding plans.
- ``ecorec.models``, ``ecorec.stats``: DLRM assembly; feature statistics.
- ``ecorec.data``: sources -> Parquet -> batches as ``KeyedJaggedTensor``.
- ``ecorec.tt``: the TT-EmbeddingBag (torch only).
- ``ecorec.utils``: atomic writes, environment records, logging (stdlib + torch).
"""

__version__ = "0.1.0"
