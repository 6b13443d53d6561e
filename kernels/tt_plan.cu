// ecorec::tt_plan on CUDA: the index preprocessing of one lookup (ecorec.tt.indexing.build_lookup_plan, d = 3).
//
// 1. bag of every occurrence (binary search in offsets);
// 2. stable radix sort of the rows (cub, only the bits prod(p) needs), carrying the original positions;
// 3. three flags per sorted occurrence (new level-0 prefix, new prefix group, new row) and an inclusive scan of
//    each: the 1-based level-0 / group / unique id of every sorted occurrence (no atomics, no counting pass);
// 4. one small kernel computes (n0, G, U), M and every micro-batch's bounds from the scans (binary search of
//    the unique-id scan for each micro-batch's first and last unique);
// 5. the single device->host copy of the call: those counts and bounds;
// 6. one scatter kernel fills the compact outputs (uniques, inverse, unique offsets, digits, parents, child
//    offsets) from the flags.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "tt_common.cuh"

namespace ecorec {
namespace {

__global__ void bag_ids_kernel(const int64_t* __restrict__ offsets, int64_t num_bags, int64_t nnz,
                               int64_t* __restrict__ bag_ids) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= nnz) return;
  // The last bag b with offsets[b] <= o (empty bags share their offset with the next bag and are skipped).
  int64_t lo = 0, hi = num_bags;  // answer in [lo, hi)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (offsets[mid] <= o) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  bag_ids[o] = lo;
}

// ids: (3, nnz); row 0/1/2 = flag of a new level-0 prefix / prefix group / row at sorted position k.
__global__ void level_flags_kernel(const int64_t* __restrict__ sorted_rows, int64_t nnz, int64_t num_rows,
                                   int64_t group_div, int64_t level0_div, int64_t* __restrict__ ids) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= nnz) return;
  const int64_t row = sorted_rows[k];
  CUDA_KERNEL_ASSERT(0 <= row && row < num_rows);
  bool new_level0 = true, new_group = true, new_row = true;
  if (k > 0) {
    const int64_t prev = sorted_rows[k - 1];
    new_row = row != prev;
    new_group = row / group_div != prev / group_div;
    new_level0 = row / level0_div != prev / level0_div;
  }
  ids[k] = new_level0;
  ids[nnz + k] = new_group;
  ids[2 * nnz + k] = new_row;
}

// First k in [0, n) with values[k] >= target (n if none); values non-decreasing.
__device__ int64_t lower_bound(const int64_t* values, int64_t n, int64_t target) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (values[mid] < target) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// info[0..3] = (n0, G, U, M); info[4 + 8 m ..] = [o_start, o_end, a0, b0, a1, b1, u_start, u_end] of
// micro-batch m. M = max(micro_batches, ceil(U / max_micro_uniques)) capped at U; the first U mod M
// micro-batches get one extra unique (ecorec.tt.indexing.micro_batch_sizes).
__global__ void micro_bounds_kernel(const int64_t* __restrict__ ids, int64_t nnz, int64_t micro_batches,
                                    int64_t max_micro_uniques, int64_t max_micro, int64_t* __restrict__ info) {
  const int64_t* level0_ids = ids;
  const int64_t* group_ids = ids + nnz;
  const int64_t* unique_ids = ids + 2 * nnz;
  const int64_t num_uniques = unique_ids[nnz - 1];
  int64_t count = micro_batches;
  if (max_micro_uniques > 0) count = max64(count, (num_uniques + max_micro_uniques - 1) / max_micro_uniques);
  count = min64(count, num_uniques);
  CUDA_KERNEL_ASSERT(count <= max_micro);
  if (threadIdx.x == 0) {
    info[0] = level0_ids[nnz - 1];
    info[1] = group_ids[nnz - 1];
    info[2] = num_uniques;
    info[3] = count;
  }
  const int64_t base = num_uniques / count, extra = num_uniques % count;
  for (int64_t m = threadIdx.x; m < count; m += blockDim.x) {
    const int64_t u_start = m * base + min64(m, extra);
    const int64_t u_end = u_start + base + (m < extra ? 1 : 0);
    // unique_ids are 1-based: the occurrences of unique u have unique_ids == u + 1.
    const int64_t o_start = lower_bound(unique_ids, nnz, u_start + 1);
    const int64_t o_end = lower_bound(unique_ids, nnz, u_end + 1);
    int64_t* row = info + 4 + 8 * m;
    row[0] = o_start;
    row[1] = o_end;
    row[2] = level0_ids[o_start] - 1;
    row[3] = level0_ids[o_end - 1];
    row[4] = group_ids[o_start] - 1;
    row[5] = group_ids[o_end - 1];
    row[6] = u_start;
    row[7] = u_end;
  }
}

struct PlanOutputs {
  int64_t* uniques;
  int64_t* inverse;
  int64_t* unique_offsets;
  int64_t* digits0;
  int64_t* digits1;
  int64_t* digits2;
  int64_t* parents1;
  int64_t* parents2;
  int64_t* child_offsets0;
  int64_t* child_offsets1;
};

__global__ void scatter_plan_kernel(const int64_t* __restrict__ sorted_rows,
                                    const int64_t* __restrict__ sorted_positions, const int64_t* __restrict__ ids,
                                    int64_t nnz, int64_t p0, int64_t p1, int64_t p2, PlanOutputs out) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= nnz) return;
  const int64_t* level0_ids = ids;
  const int64_t* group_ids = ids + nnz;
  const int64_t* unique_ids = ids + 2 * nnz;
  const int64_t row = sorted_rows[k];
  const int64_t a = level0_ids[k] - 1, g = group_ids[k] - 1, u = unique_ids[k] - 1;
  out.inverse[sorted_positions[k]] = u;
  if (k == 0 || unique_ids[k - 1] != unique_ids[k]) {
    out.uniques[u] = row;
    out.unique_offsets[u] = k;
    out.digits2[u] = row % p2;
    out.parents2[u] = g;
  }
  if (k == 0 || group_ids[k - 1] != group_ids[k]) {
    out.digits1[g] = (row / p2) % p1;
    out.parents1[g] = a;
    out.child_offsets1[g] = u;
  }
  if (k == 0 || level0_ids[k - 1] != level0_ids[k]) {
    out.digits0[a] = (row / (p1 * p2)) % p0;
    out.child_offsets0[a] = g;
  }
  if (k == nnz - 1) {
    out.unique_offsets[u + 1] = nnz;
    out.child_offsets1[g + 1] = u + 1;
    out.child_offsets0[a + 1] = g + 1;
  }
}

int bit_width(int64_t value) {  // bits needed for values in [0, value]
  int bits = 1;
  while (bits < 63 && (value >> bits) != 0) ++bits;
  return bits;
}

}  // namespace

PlanTuple tt_plan_cuda(const at::Tensor& indices_in, const at::Tensor& offsets_in, at::IntArrayRef p_shapes,
                       int64_t micro_batches, std::optional<int64_t> max_micro_uniques) {
  TORCH_CHECK(indices_in.is_cuda(), "indices must be a CUDA tensor, got ", indices_in.device());
  const at::Device device = indices_in.device();
  check_index_tensor(indices_in.contiguous(), "indices", device);
  check_index_tensor(offsets_in.contiguous(), "offsets", device);
  TORCH_CHECK(offsets_in.numel() >= 1, "offsets must have B + 1 >= 1 entries (with the last offset)");
  TORCH_CHECK(p_shapes.size() == 3, "the CUDA TT ops support 3 cores: p_shapes must have 3 entries, got ",
              p_shapes);
  TORCH_CHECK(p_shapes[0] >= 1 && p_shapes[1] >= 1 && p_shapes[2] >= 1, "p_shapes must be >= 1, got ",
              p_shapes);
  TORCH_CHECK(micro_batches >= 1, "micro_batches must be >= 1, got ", micro_batches);
  TORCH_CHECK(!max_micro_uniques.has_value() || *max_micro_uniques >= 1,
              "max_micro_uniques must be >= 1 or None, got ", max_micro_uniques.value_or(0));
  const int64_t p0 = p_shapes[0], p1 = p_shapes[1], p2 = p_shapes[2];
  TORCH_CHECK(p0 <= (INT64_C(1) << 62) / p1 / p2, "prod(p_shapes) must be below 2^62, got ", p_shapes);
  const int64_t num_rows = p0 * p1 * p2;

  c10::cuda::CUDAGuard guard(device);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor indices = indices_in.contiguous();
  const at::Tensor offsets = offsets_in.contiguous();
  const int64_t nnz = indices.numel();
  const int64_t num_bags = offsets.numel() - 1;
  const auto i64 = indices.options();
  TORCH_CHECK(nnz == 0 || num_bags >= 1, "offsets describe no bag but there are nnz=", nnz, " indices");

  at::Tensor bag_ids = at::empty({nnz}, i64);
  if (nnz == 0) {
    at::Tensor empty = at::empty({0}, i64);
    at::Tensor one_zero = at::zeros({1}, i64);
    return {bag_ids,        empty.clone(), empty.clone(), empty.clone(), one_zero.clone(), empty.clone(),
            empty.clone(),  empty.clone(), empty.clone(), empty.clone(), one_zero.clone(), one_zero.clone(),
            at::empty({0, 8}, at::TensorOptions().dtype(at::kLong))};
  }
  bag_ids_kernel<<<blocks_for(nnz), kThreads, 0, stream>>>(offsets.data_ptr<int64_t>(), num_bags, nnz,
                                                            bag_ids.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // 2. stable sort of the rows, carrying their positions.
  at::Tensor positions = at::arange(nnz, i64);
  at::Tensor sorted_rows = at::empty({nnz}, i64);
  at::Tensor sorted_positions = at::empty({nnz}, i64);
  const int end_bit = bit_width(num_rows - 1);
  size_t sort_bytes = 0;
  C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, indices.data_ptr<int64_t>(),
                                                 sorted_rows.data_ptr<int64_t>(), positions.data_ptr<int64_t>(),
                                                 sorted_positions.data_ptr<int64_t>(), nnz, 0, end_bit, stream));
  at::Tensor sort_storage = at::empty({std::max<int64_t>(static_cast<int64_t>(sort_bytes), 1)}, i64.dtype(at::kByte));
  C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_storage.data_ptr(), sort_bytes, indices.data_ptr<int64_t>(),
                                                 sorted_rows.data_ptr<int64_t>(), positions.data_ptr<int64_t>(),
                                                 sorted_positions.data_ptr<int64_t>(), nnz, 0, end_bit, stream));

  // 3. flags and scans: 1-based level-0 / group / unique ids of every sorted occurrence.
  at::Tensor ids = at::empty({3, nnz}, i64);
  int64_t* ids_ptr = ids.data_ptr<int64_t>();
  level_flags_kernel<<<blocks_for(nnz), kThreads, 0, stream>>>(sorted_rows.data_ptr<int64_t>(), nnz, num_rows, p2,
                                                                p1 * p2, ids_ptr);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  size_t scan_bytes = 0;
  C10_CUDA_CHECK(cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, ids_ptr, ids_ptr, nnz, stream));
  at::Tensor scan_storage = at::empty({std::max<int64_t>(static_cast<int64_t>(scan_bytes), 1)}, i64.dtype(at::kByte));
  for (int level = 0; level < 3; ++level) {
    int64_t* row = ids_ptr + level * nnz;
    C10_CUDA_CHECK(cub::DeviceScan::InclusiveSum(scan_storage.data_ptr(), scan_bytes, row, row, nnz, stream));
  }

  // 4-5. counts and micro-batch bounds on the device, then the one device->host copy.
  const int64_t mmu = max_micro_uniques.value_or(0);
  int64_t max_micro = micro_batches;
  if (mmu > 0) max_micro = std::max(max_micro, ceil_div(nnz, mmu));
  max_micro = std::min(max_micro, nnz);  // U <= nnz
  at::Tensor info = at::empty({4 + 8 * max_micro}, i64);
  micro_bounds_kernel<<<1, kThreads, 0, stream>>>(ids_ptr, nnz, micro_batches, mmu, max_micro,
                                                  info.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const at::Tensor host_info = info.to(at::kCPU);
  const int64_t* h = host_info.data_ptr<int64_t>();
  const int64_t n0 = h[0], num_groups = h[1], num_uniques = h[2], num_micro = h[3];
  TORCH_INTERNAL_ASSERT(1 <= num_micro && num_micro <= max_micro && 1 <= n0 && n0 <= num_groups &&
                        num_groups <= num_uniques && num_uniques <= nnz);
  at::Tensor micro_bounds = host_info.narrow(0, 4, 8 * num_micro).view({num_micro, 8}).clone();

  // 6. compact outputs.
  at::Tensor uniques = at::empty({num_uniques}, i64);
  at::Tensor inverse = at::empty({nnz}, i64);
  at::Tensor unique_offsets = at::empty({num_uniques + 1}, i64);
  at::Tensor digits0 = at::empty({n0}, i64);
  at::Tensor digits1 = at::empty({num_groups}, i64);
  at::Tensor digits2 = at::empty({num_uniques}, i64);
  at::Tensor parents1 = at::empty({num_groups}, i64);
  at::Tensor parents2 = at::empty({num_uniques}, i64);
  at::Tensor child_offsets0 = at::empty({n0 + 1}, i64);
  at::Tensor child_offsets1 = at::empty({num_groups + 1}, i64);
  PlanOutputs out{uniques.data_ptr<int64_t>(),        inverse.data_ptr<int64_t>(),
                  unique_offsets.data_ptr<int64_t>(), digits0.data_ptr<int64_t>(),
                  digits1.data_ptr<int64_t>(),        digits2.data_ptr<int64_t>(),
                  parents1.data_ptr<int64_t>(),       parents2.data_ptr<int64_t>(),
                  child_offsets0.data_ptr<int64_t>(), child_offsets1.data_ptr<int64_t>()};
  scatter_plan_kernel<<<blocks_for(nnz), kThreads, 0, stream>>>(
      sorted_rows.data_ptr<int64_t>(), sorted_positions.data_ptr<int64_t>(), ids_ptr, nnz, p0, p1, p2, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {bag_ids,  uniques,  inverse,  sorted_positions, unique_offsets, digits0,       digits1,
          digits2,  parents1, parents2, child_offsets0,   child_offsets1, micro_bounds};
}

}  // namespace ecorec
