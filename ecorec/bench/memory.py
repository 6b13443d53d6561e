"""Peak memory of a callable, measured from the allocator: kept here for the benchmarks; the implementation
lives in :mod:`ecorec.utils.memory` (the training loop measures its steps with it too)."""

from ecorec.utils.memory import PeakMemory, measure_peak_memory

__all__ = ["PeakMemory", "measure_peak_memory"]
