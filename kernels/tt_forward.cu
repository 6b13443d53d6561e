// ecorec::tt_forward on CUDA ("multiply, then contract"), per micro-batch of sorted uniques:
//
// 1. prefix products T01[g] = G0[I0] G1[I1], one per prefix group (batched GEMM, pointer arrays);
// 2. one row per unique: E[u] = T01[group(u)] G2[I2(u)] (batched GEMM), Q columns;
// 3. pooling: one warp per bag walks the bag's occurrences in bag order and sums the rows of the occurrences
//    whose unique lies in the micro-batch (weights, 1/len for "mean"); micro-batch 0 writes every bag, later
//    ones add to it. No atomics: the output is deterministic.
#include "tt_common.cuh"

namespace ecorec {
namespace {

// E rows of the micro-batch's uniques u = u_start + i, i < n: E[i] = T01[parents2[u] - a1] @ G2[I2(u)].
template <typename T>
__global__ void unique_row_pointers_kernel(const T* t01, const T* __restrict__ core2,
                                           const int64_t* __restrict__ digits2,
                                           const int64_t* __restrict__ parents2, int64_t u_start, int64_t a1,
                                           int64_t n, int64_t p2, int64_t prefix_len, int64_t row2, T* rows,
                                           int64_t padded_dim, const T** pa, const T** pb, T** pc) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t u = u_start + i;
  const int64_t i2 = digits2[u];
  CUDA_KERNEL_ASSERT(0 <= i2 && i2 < p2);
  pa[i] = t01 + (parents2[u] - a1) * prefix_len;
  pb[i] = core2 + i2 * row2;
  pc[i] = rows + i * padded_dim;
}

// out[b] (+)= scale_b * sum_{o in bag b, inverse[o] in [u_start, u_end)} w_o rows[inverse[o] - u_start][:D].
// One warp per bag; `lanes` lanes cover a row's D / V vector chunks and the warp's 32 / lanes lane groups
// take every (32 / lanes)-th occurrence, combined by shuffles in a fixed order.
template <typename T, int V>
__global__ void pool_bags_kernel(const T* __restrict__ rows, int64_t padded_dim, const int64_t* __restrict__ offsets,
                                 const int64_t* __restrict__ inverse, const T* __restrict__ weights, bool mean,
                                 int64_t u_start, int64_t u_end, int64_t num_bags, int64_t dim, int lanes,
                                 bool accumulate, T* __restrict__ out) {
  const int64_t bag = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
  if (bag >= num_bags) return;  // uniform across the warp
  const int lane = threadIdx.x % kWarpSize;
  const int group = lane / lanes, sub = lane % lanes, groups = kWarpSize / lanes;
  const int64_t start = offsets[bag], end = offsets[bag + 1];
  const T scale = mean ? T(1) / static_cast<T>(end > start ? end - start : 1) : T(1);
  const int64_t chunks = dim / V;
  for (int64_t base = 0; base < chunks; base += lanes) {
    const int64_t c = base + sub;
    Vec<T, V> acc;
#pragma unroll
    for (int j = 0; j < V; ++j) acc.v[j] = T(0);
    if (c < chunks) {
      for (int64_t o = start + group; o < end; o += groups) {
        const int64_t u = inverse[o];
        if (u < u_start || u >= u_end) continue;
        const T w = weights != nullptr ? weights[o] : T(1);
        const Vec<T, V> x = load_vec<T, V>(rows + (u - u_start) * padded_dim + c * V);
#pragma unroll
        for (int j = 0; j < V; ++j) acc.v[j] += w * x.v[j];
      }
    }
    for (int s = kWarpSize / 2; s >= lanes; s >>= 1) {
#pragma unroll
      for (int j = 0; j < V; ++j) acc.v[j] += __shfl_down_sync(0xffffffffu, acc.v[j], s);
    }
    if (group == 0 && c < chunks) {
      T* dst = out + bag * dim + c * V;
      Vec<T, V> result;
      if (accumulate) {
        const Vec<T, V> previous = load_vec<T, V>(dst);
#pragma unroll
        for (int j = 0; j < V; ++j) result.v[j] = previous.v[j] + scale * acc.v[j];
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) result.v[j] = scale * acc.v[j];
      }
      store_vec<T, V>(dst, result);
    }
  }
}

template <typename T, int V>
void launch_pool_bags(const T* rows, const TTDims& d, const Plan& plan, const T* weights, bool mean,
                      const MicroBound& mb, bool accumulate, T* out, cudaStream_t stream) {
  const int64_t num_bags = plan.num_bags();
  if (num_bags == 0) return;
  const int lanes = lanes_per_row(d.dim / V);
  pool_bags_kernel<T, V><<<blocks_for(num_bags, kWarpsPerBlock), kThreads, 0, stream>>>(
      rows, d.padded_dim(), plan.offsets.data_ptr<int64_t>(), plan.inverse.data_ptr<int64_t>(), weights, mean,
      mb.u_start, mb.u_end, num_bags, d.dim, lanes, accumulate, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void forward_impl(const TTDims& d, const at::Tensor& core0, const at::Tensor& core1, const at::Tensor& core2,
                  const Plan& plan, const std::vector<MicroBound>& bounds, const T* weights, bool mean,
                  at::Tensor& output) {
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  int64_t max_groups = 0, max_uniques = 0;
  for (const MicroBound& mb : bounds) {
    max_groups = std::max(max_groups, mb.groups());
    max_uniques = std::max(max_uniques, mb.uniques());
  }
  at::Tensor t01 = at::empty({max_groups, d.prefix_len()}, core0.options());
  at::Tensor rows = at::empty({max_uniques, d.padded_dim()}, core0.options());
  PointerArrays<T> prefix_ptrs(max_groups, core0.device());
  PointerArrays<T> row_ptrs(max_uniques, core0.device());
  const bool vectorized = std::is_same_v<T, float> && d.dim % 4 == 0 && d.padded_dim() % 4 == 0;
  T* t01_ptr = t01.data_ptr<T>();
  T* rows_ptr = rows.data_ptr<T>();
  for (size_t m = 0; m < bounds.size(); ++m) {
    const MicroBound& mb = bounds[m];
    compute_prefix_products<T>(d, core0.data_ptr<T>(), core1.data_ptr<T>(), plan, mb, t01_ptr, prefix_ptrs, stream);
    const int64_t n = mb.uniques();
    unique_row_pointers_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(
        t01_ptr, core2.data_ptr<T>(), plan.digits2.data_ptr<int64_t>(), plan.parents2.data_ptr<int64_t>(),
        mb.u_start, mb.a1, n, d.p2, d.prefix_len(), d.row2(), rows_ptr, d.padded_dim(), row_ptrs.a, row_ptrs.b,
        row_ptrs.c);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    gemm_batched<T>(false, false, d.q0 * d.q1, d.q2, d.r2, row_ptrs.a, row_ptrs.b, row_ptrs.c, n);
    if (vectorized) {
      launch_pool_bags<T, 4>(rows_ptr, d, plan, weights, mean, mb, m > 0, output.data_ptr<T>(), stream);
    } else {
      launch_pool_bags<T, 1>(rows_ptr, d, plan, weights, mean, mb, m > 0, output.data_ptr<T>(), stream);
    }
  }
}

}  // namespace

at::Tensor tt_forward_cuda(const at::Tensor& core0_in, const at::Tensor& core1_in, const at::Tensor& core2_in,
                           const at::Tensor& offsets, const at::Tensor& bag_ids, const at::Tensor& uniques,
                           const at::Tensor& inverse, const at::Tensor& sorted_positions,
                           const at::Tensor& unique_offsets, const at::Tensor& digits0, const at::Tensor& digits1,
                           const at::Tensor& digits2, const at::Tensor& parents1, const at::Tensor& parents2,
                           const at::Tensor& child_offsets0, const at::Tensor& child_offsets1,
                           const at::Tensor& micro_bounds, const std::optional<at::Tensor>& per_sample_weights,
                           at::IntArrayRef q_shapes, at::IntArrayRef ranks, int64_t embedding_dim,
                           c10::string_view mode) {
  const TTDims d = check_tt_dims(core0_in, core1_in, core2_in, q_shapes, ranks, embedding_dim);
  const at::Device device = core0_in.device();
  c10::cuda::CUDAGuard guard(device);
  const Plan plan{offsets,  bag_ids, uniques,  inverse,  sorted_positions, unique_offsets, digits0,
                  digits1,  digits2, parents1, parents2, child_offsets0,   child_offsets1};
  const std::vector<MicroBound> bounds = check_plan(plan, micro_bounds, device);
  check_per_sample_weights(per_sample_weights, plan, core0_in, mode);
  const at::Tensor core0 = core0_in.contiguous(), core1 = core1_in.contiguous(), core2 = core2_in.contiguous();
  const at::Tensor weights = per_sample_weights.has_value() ? per_sample_weights->contiguous() : at::Tensor();
  at::Tensor output = at::empty({plan.num_bags(), d.dim}, core0.options());
  if (bounds.empty()) {  // no index: every bag is empty
    output.zero_();
    return output;
  }
  const bool mean = mode == "mean";
  AT_DISPATCH_FLOATING_TYPES(core0.scalar_type(), "ecorec::tt_forward", [&] {
    forward_impl<scalar_t>(d, core0, core1, core2, plan, bounds,
                           weights.defined() ? weights.data_ptr<scalar_t>() : nullptr, mean, output);
  });
  return output;
}

}  // namespace ecorec
