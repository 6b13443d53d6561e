// ecorec::tt_backward on CUDA ("contract, then multiply"), per micro-batch of sorted uniques:
//
// 1. bag -> unique: dE[u] = sum over u's occurrences (sorted order) of w_o scale_b dY[bag(o)], one warp per
//    unique reading dY directly (no nnz x D tensor); columns D..Q-1 get zero;
// 2. recompute the prefix products T01 of the micro-batch's groups;
// 3. part 2, two batched GEMMs per unique: dG2 slice T01^T dE (r2 x q2) and dT01_u = dE G2[I2]^T;
// 4. dG2 slices into d_core2 by I2; unique -> group contraction dT01_g = sum of the group's children
//    (contiguous, fixed order);
// 5. part 1, two batched GEMMs per group: dG1 slice G0[I0]^T dT01_g (r1 x q1 r2) and dG0 slice
//    dT01_g G1[I1]^T (q0 x r1);
// 6. dG1 slices into d_core1 by I1; dG0 slices summed per level-0 prefix (contiguous children) into
//    d_core0[I0] (distinct rows within a micro-batch: no conflicts).
//
// Core-row accumulation (4, 6) uses float atomics, or with `deterministic` a stable sort of the digits and a
// segment sum per core row (fixed order). Everything else is deterministic by construction.
#include "tt_common.cuh"

namespace ecorec {
namespace {

// dE[i] for the uniques u = u_start + i: sum over u's occurrences of w * dY[bag][:D]; zeros in [D, Q).
template <typename T, int V>
__global__ void unique_grads_kernel(const T* __restrict__ grad_output, int64_t dim,
                                    const int64_t* __restrict__ unique_offsets,
                                    const int64_t* __restrict__ sorted_positions,
                                    const int64_t* __restrict__ bag_ids, const int64_t* __restrict__ offsets,
                                    const T* __restrict__ weights, bool mean, int64_t u_start, int64_t n,
                                    int64_t padded_dim, int lanes, T* __restrict__ unique_grads) {
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
  if (i >= n) return;  // uniform across the warp
  const int lane = threadIdx.x % kWarpSize;
  const int group = lane / lanes, sub = lane % lanes, groups = kWarpSize / lanes;
  const int64_t u = u_start + i;
  const int64_t start = unique_offsets[u], end = unique_offsets[u + 1];
  T* dst_row = unique_grads + i * padded_dim;
  const int64_t chunks = dim / V;
  for (int64_t base = 0; base < chunks; base += lanes) {
    const int64_t c = base + sub;
    Vec<T, V> acc;
#pragma unroll
    for (int j = 0; j < V; ++j) acc.v[j] = T(0);
    if (c < chunks) {
      for (int64_t k = start + group; k < end; k += groups) {
        const int64_t position = sorted_positions[k];
        const int64_t bag = bag_ids[position];
        T w = weights != nullptr ? weights[position] : T(1);
        if (mean) {
          const int64_t length = offsets[bag + 1] - offsets[bag];
          w /= static_cast<T>(length > 0 ? length : 1);
        }
        const Vec<T, V> g = load_vec<T, V>(grad_output + bag * dim + c * V);
#pragma unroll
        for (int j = 0; j < V; ++j) acc.v[j] += w * g.v[j];
      }
    }
    for (int s = kWarpSize / 2; s >= lanes; s >>= 1) {
#pragma unroll
      for (int j = 0; j < V; ++j) acc.v[j] += __shfl_down_sync(0xffffffffu, acc.v[j], s);
    }
    if (group == 0 && c < chunks) store_vec<T, V>(dst_row + c * V, acc);
  }
  for (int64_t j = dim + lane; j < padded_dim; j += kWarpSize) dst_row[j] = T(0);
}

// Part 2 pointers for the uniques u = u_start + i:
//   slices2[i] = T01[group]^T (r2 x q0 q1) @ dE[i] (q0 q1 x q2)        (set x)
//   dT01u[i]   = dE[i] (q0 q1 x q2) @ G2[I2]^T (q2 x r2)               (set y)
template <typename T>
__global__ void part2_pointers_kernel(const T* t01, const T* __restrict__ core2, const T* unique_grads,
                                      const int64_t* __restrict__ digits2, const int64_t* __restrict__ parents2,
                                      int64_t u_start, int64_t a1, int64_t n, int64_t p2, int64_t prefix_len,
                                      int64_t row2, int64_t padded_dim, T* slices2, T* unique_prefix_grads,
                                      const T** xa, const T** xb, T** xc, const T** ya, const T** yb, T** yc) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t u = u_start + i;
  const int64_t i2 = digits2[u];
  CUDA_KERNEL_ASSERT(0 <= i2 && i2 < p2);
  const T* prefix = t01 + (parents2[u] - a1) * prefix_len;
  const T* grad = unique_grads + i * padded_dim;
  xa[i] = prefix;
  xb[i] = grad;
  xc[i] = slices2 + i * row2;
  ya[i] = grad;
  yb[i] = core2 + i2 * row2;
  yc[i] = unique_prefix_grads + i * prefix_len;
}

// Part 1 pointers for the groups g = a1 + i:
//   slices1[i] = G0[I0]^T (r1 x q0) @ dT01g[i] (q0 x q1 r2)            (set x)
//   slices0[i] = dT01g[i] (q0 x q1 r2) @ G1[I1]^T (q1 r2 x r1)         (set y)
template <typename T>
__global__ void part1_pointers_kernel(const T* __restrict__ core0, const T* __restrict__ core1,
                                      const T* group_grads, const int64_t* __restrict__ digits0,
                                      const int64_t* __restrict__ digits1, const int64_t* __restrict__ parents1,
                                      int64_t a1, int64_t n, int64_t p0, int64_t p1, int64_t row0, int64_t row1,
                                      int64_t prefix_len, T* slices1, T* slices0, const T** xa, const T** xb,
                                      T** xc, const T** ya, const T** yb, T** yc) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t g = a1 + i;
  const int64_t i0 = digits0[parents1[g]];
  const int64_t i1 = digits1[g];
  CUDA_KERNEL_ASSERT(0 <= i0 && i0 < p0 && 0 <= i1 && i1 < p1);
  const T* grad = group_grads + i * prefix_len;
  xa[i] = core0 + i0 * row0;
  xb[i] = grad;
  xc[i] = slices1 + i * row1;
  ya[i] = grad;
  yb[i] = core1 + i1 * row1;
  yc[i] = slices0 + i * row0;
}

// out[row(j)] (+)= sum of values[i - child_lo] over the children i of parent j, for j < n parents: the
// children of j are [child_offsets[j], child_offsets[j + 1]) clamped to [child_lo, child_hi) (a parent that
// straddles a micro-batch boundary keeps only this micro-batch's children). row(j) = out_rows[j], or j.
// Grid: (n, ceil(width / blockDim)).
template <typename T>
__global__ void segment_sum_kernel(const T* __restrict__ values, int64_t width,
                                   const int64_t* __restrict__ child_offsets, int64_t child_lo, int64_t child_hi,
                                   int64_t n, const int64_t* __restrict__ out_rows, bool accumulate,
                                   T* __restrict__ out) {
  const int64_t j = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= n || c >= width) return;
  const int64_t lo = clamp64(child_offsets[j], child_lo, child_hi);
  const int64_t hi = clamp64(child_offsets[j + 1], child_lo, child_hi);
  T acc = T(0);
  for (int64_t i = lo; i < hi; ++i) acc += values[(i - child_lo) * width + c];
  const int64_t row = out_rows != nullptr ? out_rows[j] : j;
  T* dst = out + row * width + c;
  *dst = accumulate ? *dst + acc : acc;
}

template <typename T>
void launch_segment_sum(const T* values, int64_t width, const int64_t* child_offsets, int64_t child_lo,
                        int64_t child_hi, int64_t n, const int64_t* out_rows, bool accumulate, T* out,
                        cudaStream_t stream) {
  if (n == 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(kThreads, std::max<int64_t>(width, 32)));
  const dim3 grid(static_cast<unsigned int>(n), blocks_for(width, threads));
  segment_sum_kernel<T><<<grid, threads, 0, stream>>>(values, width, child_offsets, child_lo, child_hi, n,
                                                       out_rows, accumulate, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// grad[digits[i]] += values[i] for i < n with float atomics.
template <typename T>
__global__ void accumulate_rows_atomic_kernel(const T* __restrict__ values, int64_t width,
                                              const int64_t* __restrict__ digits, int64_t n, int64_t num_rows,
                                              T* grad) {
  const int64_t total = n * width;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const int64_t i = idx / width, c = idx % width;
    const int64_t row = digits[i];
    CUDA_KERNEL_ASSERT(0 <= row && row < num_rows);
    atomicAdd(grad + row * width + c, values[idx]);
  }
}

// grad[r] += sum over i in [starts[r], starts[r+1]) of values[perm[i]] (items sorted by row, stable).
// Grid: (num_rows, ceil(width / blockDim)).
template <typename T>
__global__ void accumulate_rows_sorted_kernel(const T* __restrict__ values, int64_t width,
                                              const int64_t* __restrict__ perm, const int64_t* __restrict__ starts,
                                              T* __restrict__ grad) {
  const int64_t r = blockIdx.x;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  const int64_t s = starts[r], e = starts[r + 1];
  if (s == e || c >= width) return;
  T acc = T(0);
  for (int64_t i = s; i < e; ++i) acc += values[perm[i] * width + c];
  grad[r * width + c] += acc;
}

// grad (p, width) += the slices values (n, width) at rows digits (n,), a view of the plan's digits.
template <typename T>
void accumulate_rows(at::Tensor& grad, const at::Tensor& digits, const T* values, bool deterministic,
                     cudaStream_t stream) {
  const int64_t n = digits.numel(), width = grad.size(1), num_rows = grad.size(0);
  if (n == 0) return;
  if (!deterministic) {
    const int64_t blocks = std::min<int64_t>(ceil_div(n * width, kThreads), int64_t{1} << 20);
    accumulate_rows_atomic_kernel<T><<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(
        values, width, digits.data_ptr<int64_t>(), n, num_rows, grad.data_ptr<T>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  const auto sorted = at::sort(digits, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor& perm = std::get<1>(sorted);
  const at::Tensor starts = at::searchsorted(std::get<0>(sorted), at::arange(num_rows + 1, digits.options()));
  const int threads = static_cast<int>(std::min<int64_t>(kThreads, std::max<int64_t>(width, 32)));
  const dim3 grid(static_cast<unsigned int>(num_rows), blocks_for(width, threads));
  accumulate_rows_sorted_kernel<T><<<grid, threads, 0, stream>>>(values, width, perm.data_ptr<int64_t>(),
                                                                 starts.data_ptr<int64_t>(), grad.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void backward_impl(const TTDims& d, const at::Tensor& grad_output, const at::Tensor& core0, const at::Tensor& core1,
                   const at::Tensor& core2, const Plan& plan, const std::vector<MicroBound>& bounds,
                   const T* weights, bool mean, bool deterministic, at::Tensor& grad0, at::Tensor& grad1,
                   at::Tensor& grad2) {
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  int64_t max_groups = 0, max_uniques = 0;
  for (const MicroBound& mb : bounds) {
    max_groups = std::max(max_groups, mb.groups());
    max_uniques = std::max(max_uniques, mb.uniques());
  }
  const auto options = core0.options();
  at::Tensor t01 = at::empty({max_groups, d.prefix_len()}, options);
  at::Tensor unique_grads = at::empty({max_uniques, d.padded_dim()}, options);
  at::Tensor slices2 = at::empty({max_uniques, d.row2()}, options);
  at::Tensor unique_prefix_grads = at::empty({max_uniques, d.prefix_len()}, options);
  at::Tensor group_grads = at::empty({max_groups, d.prefix_len()}, options);
  at::Tensor slices1 = at::empty({max_groups, d.row1()}, options);
  at::Tensor slices0 = at::empty({max_groups, d.row0()}, options);
  const at::Device device = core0.device();
  PointerArrays<T> prefix_ptrs(max_groups, device);
  PointerArrays<T> x_ptrs(std::max(max_groups, max_uniques), device);
  PointerArrays<T> y_ptrs(std::max(max_groups, max_uniques), device);
  const bool vectorized = std::is_same_v<T, float> && d.dim % 4 == 0 && d.padded_dim() % 4 == 0 &&
                          aligned16(grad_output.data_ptr());
  const int64_t prefix_len = d.prefix_len();

  for (const MicroBound& mb : bounds) {
    const int64_t n_u = mb.uniques(), n_g = mb.groups();
    // 1. bag -> unique.
    const int64_t* unique_offsets = plan.unique_offsets.data_ptr<int64_t>();
    const int64_t* sorted_positions = plan.sorted_positions.data_ptr<int64_t>();
    const int64_t* bag_ids = plan.bag_ids.data_ptr<int64_t>();
    const int64_t* offsets = plan.offsets.data_ptr<int64_t>();
    const unsigned int warp_blocks = blocks_for(n_u, kWarpsPerBlock);
    if (vectorized) {
      unique_grads_kernel<T, 4><<<warp_blocks, kThreads, 0, stream>>>(
          grad_output.data_ptr<T>(), d.dim, unique_offsets, sorted_positions, bag_ids, offsets, weights, mean,
          mb.u_start, n_u, d.padded_dim(), lanes_per_row(d.dim / 4), unique_grads.data_ptr<T>());
    } else {
      unique_grads_kernel<T, 1><<<warp_blocks, kThreads, 0, stream>>>(
          grad_output.data_ptr<T>(), d.dim, unique_offsets, sorted_positions, bag_ids, offsets, weights, mean,
          mb.u_start, n_u, d.padded_dim(), lanes_per_row(d.dim), unique_grads.data_ptr<T>());
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // 2. recompute T01.
    compute_prefix_products<T>(d, core0.data_ptr<T>(), core1.data_ptr<T>(), plan, mb, t01.data_ptr<T>(),
                               prefix_ptrs, stream);
    // 3. part 2.
    part2_pointers_kernel<T><<<blocks_for(n_u), kThreads, 0, stream>>>(
        t01.data_ptr<T>(), core2.data_ptr<T>(), unique_grads.data_ptr<T>(), plan.digits2.data_ptr<int64_t>(),
        plan.parents2.data_ptr<int64_t>(), mb.u_start, mb.a1, n_u, d.p2, prefix_len, d.row2(), d.padded_dim(),
        slices2.data_ptr<T>(), unique_prefix_grads.data_ptr<T>(), x_ptrs.a, x_ptrs.b, x_ptrs.c, y_ptrs.a,
        y_ptrs.b, y_ptrs.c);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    gemm_batched<T>(true, false, d.r2, d.q2, d.q0 * d.q1, x_ptrs.a, x_ptrs.b, x_ptrs.c, n_u);
    gemm_batched<T>(false, true, d.q0 * d.q1, d.r2, d.q2, y_ptrs.a, y_ptrs.b, y_ptrs.c, n_u);
    // 4. core-2 rows; unique -> group.
    accumulate_rows<T>(grad2, plan.digits2.narrow(0, mb.u_start, n_u), slices2.data_ptr<T>(), deterministic,
                       stream);
    launch_segment_sum<T>(unique_prefix_grads.data_ptr<T>(), prefix_len,
                          plan.child_offsets1.data_ptr<int64_t>() + mb.a1, mb.u_start, mb.u_end, n_g, nullptr,
                          false, group_grads.data_ptr<T>(), stream);
    // 5. part 1.
    part1_pointers_kernel<T><<<blocks_for(n_g), kThreads, 0, stream>>>(
        core0.data_ptr<T>(), core1.data_ptr<T>(), group_grads.data_ptr<T>(), plan.digits0.data_ptr<int64_t>(),
        plan.digits1.data_ptr<int64_t>(), plan.parents1.data_ptr<int64_t>(), mb.a1, n_g, d.p0, d.p1, d.row0(),
        d.row1(), prefix_len, slices1.data_ptr<T>(), slices0.data_ptr<T>(), x_ptrs.a, x_ptrs.b, x_ptrs.c,
        y_ptrs.a, y_ptrs.b, y_ptrs.c);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    gemm_batched<T>(true, false, d.r1, d.q1 * d.r2, d.q0, x_ptrs.a, x_ptrs.b, x_ptrs.c, n_g);
    gemm_batched<T>(false, true, d.q0, d.r1, d.q1 * d.r2, y_ptrs.a, y_ptrs.b, y_ptrs.c, n_g);
    // 6. core-1 rows; groups -> level-0 prefixes -> core-0 rows.
    accumulate_rows<T>(grad1, plan.digits1.narrow(0, mb.a1, n_g), slices1.data_ptr<T>(), deterministic, stream);
    launch_segment_sum<T>(slices0.data_ptr<T>(), d.row0(), plan.child_offsets0.data_ptr<int64_t>() + mb.a0, mb.a1,
                          mb.b1, mb.b0 - mb.a0, plan.digits0.data_ptr<int64_t>() + mb.a0, true,
                          grad0.data_ptr<T>(), stream);
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> tt_backward_cuda(
    const at::Tensor& grad_output_in, const at::Tensor& core0_in, const at::Tensor& core1_in,
    const at::Tensor& core2_in, const at::Tensor& offsets, const at::Tensor& bag_ids, const at::Tensor& uniques,
    const at::Tensor& inverse, const at::Tensor& sorted_positions, const at::Tensor& unique_offsets,
    const at::Tensor& digits0, const at::Tensor& digits1, const at::Tensor& digits2, const at::Tensor& parents1,
    const at::Tensor& parents2, const at::Tensor& child_offsets0, const at::Tensor& child_offsets1,
    const at::Tensor& micro_bounds, const std::optional<at::Tensor>& per_sample_weights, at::IntArrayRef q_shapes,
    at::IntArrayRef ranks, int64_t embedding_dim, c10::string_view mode, bool deterministic) {
  const TTDims d = check_tt_dims(core0_in, core1_in, core2_in, q_shapes, ranks, embedding_dim);
  const at::Device device = core0_in.device();
  c10::cuda::CUDAGuard guard(device);
  const Plan plan{offsets,  bag_ids, uniques,  inverse,  sorted_positions, unique_offsets, digits0,
                  digits1,  digits2, parents1, parents2, child_offsets0,   child_offsets1};
  const std::vector<MicroBound> bounds = check_plan(plan, micro_bounds, device);
  check_per_sample_weights(per_sample_weights, plan, core0_in, mode);
  TORCH_CHECK(grad_output_in.device() == device && grad_output_in.scalar_type() == core0_in.scalar_type() &&
                  grad_output_in.dim() == 2 && grad_output_in.size(0) == plan.num_bags() &&
                  grad_output_in.size(1) == d.dim,
              "grad_output must be a (B=", plan.num_bags(), ", D=", d.dim, ") tensor of the cores' dtype on ",
              device, ", got ", grad_output_in.scalar_type(), " ", grad_output_in.sizes(), " on ",
              grad_output_in.device());
  const at::Tensor core0 = core0_in.contiguous(), core1 = core1_in.contiguous(), core2 = core2_in.contiguous();
  const at::Tensor grad_output = grad_output_in.contiguous();
  const at::Tensor weights = per_sample_weights.has_value() ? per_sample_weights->contiguous() : at::Tensor();
  at::Tensor grad0 = at::zeros_like(core0), grad1 = at::zeros_like(core1), grad2 = at::zeros_like(core2);
  if (bounds.empty()) return {grad0, grad1, grad2};
  const bool mean = mode == "mean";
  AT_DISPATCH_FLOATING_TYPES(core0.scalar_type(), "ecorec::tt_backward", [&] {
    backward_impl<scalar_t>(d, grad_output, core0, core1, core2, plan, bounds,
                            weights.defined() ? weights.data_ptr<scalar_t>() : nullptr, mean, deterministic,
                            grad0, grad1, grad2);
  });
  return {grad0, grad1, grad2};
}

}  // namespace ecorec
