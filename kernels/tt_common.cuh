// Shared pieces of the ecorec TT kernels: argument checks, the plan's micro-batch bounds, vector access,
// warp reductions, row-major batched GEMMs through cuBLAS, and the kernels used by both forward and backward.
//
// Index arithmetic is 64-bit throughout (int64_t offsets into every buffer); only cuBLAS's per-call batch
// count is 32-bit, so batches are issued in chunks below 2^31.
#pragma once

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/Exceptions.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "tt_ops.h"

namespace ecorec {

constexpr int kWarpSize = 32;
constexpr int kThreads = 256;               // threads per block of the 1-D kernels
constexpr int kWarpsPerBlock = kThreads / kWarpSize;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline unsigned int blocks_for(int64_t n, int64_t per_block = kThreads) {
  return static_cast<unsigned int>(std::max<int64_t>(1, ceil_div(n, per_block)));
}

// ------------------------------------------------------------------------------------------- argument checks

inline void check_index_tensor(const at::Tensor& t, const char* name, const at::Device& device) {
  TORCH_CHECK(t.device() == device, name, " must be on ", device, ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kLong, name, " must be int64, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1, name, " must be 1-D, got shape ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// TT order-3 dimensions, checked against the cores.
struct TTDims {
  int64_t p0, p1, p2, q0, q1, q2, r1, r2, dim;

  int64_t row0() const { return q0 * r1; }            // core0 row: (q0, r1)
  int64_t row1() const { return r1 * q1 * r2; }       // core1 row: (r1, q1, r2)
  int64_t row2() const { return r2 * q2; }            // core2 row: (r2, q2)
  int64_t prefix_len() const { return q0 * q1 * r2; } // T01 = G0[I0] G1[I1]: (q0 q1, r2)
  int64_t padded_dim() const { return q0 * q1 * q2; } // Q
};

inline TTDims check_tt_dims(const at::Tensor& core0, const at::Tensor& core1, const at::Tensor& core2,
                            at::IntArrayRef q_shapes, at::IntArrayRef ranks, int64_t embedding_dim) {
  TORCH_CHECK(q_shapes.size() == 3, "the CUDA TT ops support 3 cores: q_shapes must have 3 entries, got ",
              q_shapes);
  TORCH_CHECK(ranks.size() == 4 && ranks[0] == 1 && ranks[3] == 1,
              "ranks must be [1, r1, r2, 1], got ", ranks);
  TTDims d{core0.size(0), core1.size(0), core2.size(0), q_shapes[0], q_shapes[1], q_shapes[2],
           ranks[1],      ranks[2],      embedding_dim};
  TORCH_CHECK(d.q0 >= 1 && d.q1 >= 1 && d.q2 >= 1 && d.r1 >= 1 && d.r2 >= 1,
              "q_shapes and ranks must be >= 1, got q_shapes=", q_shapes, ", ranks=", ranks);
  TORCH_CHECK(embedding_dim >= 1 && embedding_dim <= d.padded_dim(), "embedding_dim must be in [1, prod(q_shapes)=",
              d.padded_dim(), "], got ", embedding_dim);
  const at::Tensor* cores[3] = {&core0, &core1, &core2};
  const int64_t widths[3] = {d.row0(), d.row1(), d.row2()};
  for (int t = 0; t < 3; ++t) {
    const at::Tensor& c = *cores[t];
    TORCH_CHECK(c.is_cuda(), "core", t, " must be a CUDA tensor, got ", c.device());
    TORCH_CHECK(c.device() == core0.device(), "core", t, " is on ", c.device(), " but core0 is on ",
                core0.device());
    TORCH_CHECK(c.scalar_type() == core0.scalar_type(), "core", t, " has dtype ", c.scalar_type(),
                " but core0 has ", core0.scalar_type());
    TORCH_CHECK(c.dim() == 2 && c.size(1) == widths[t], "core", t, " must have shape (p", t, ", ", widths[t],
                ") for q_shapes=", q_shapes, ", ranks=", ranks, ", got ", c.sizes());
    TORCH_CHECK(c.size(0) >= 1, "core", t, " has no rows");
  }
  TORCH_CHECK(core0.scalar_type() == at::kFloat || core0.scalar_type() == at::kDouble,
              "the CUDA TT ops support float32 and float64 cores, got ", core0.scalar_type());
  return d;
}

// One micro-batch: its occurrence range (sorted order) and its ranges of level-0 prefixes, prefix groups and
// uniques.
struct MicroBound {
  int64_t o_start, o_end, a0, b0, a1, b1, u_start, u_end;
  int64_t groups() const { return b1 - a1; }
  int64_t uniques() const { return u_end - u_start; }
};

// The plan's tensors on the device (see tt_ops.h for the layout).
struct Plan {
  const at::Tensor& offsets;
  const at::Tensor& bag_ids;
  const at::Tensor& uniques;
  const at::Tensor& inverse;
  const at::Tensor& sorted_positions;
  const at::Tensor& unique_offsets;
  const at::Tensor& digits0;
  const at::Tensor& digits1;
  const at::Tensor& digits2;
  const at::Tensor& parents1;
  const at::Tensor& parents2;
  const at::Tensor& child_offsets0;
  const at::Tensor& child_offsets1;

  int64_t num_bags() const { return offsets.numel() - 1; }
  int64_t nnz() const { return inverse.numel(); }
};

// Checks the plan's tensors against each other (sizes only: no device data is read) and returns the host
// micro-batch bounds; a CUDA `micro_bounds` costs one device->host copy.
inline std::vector<MicroBound> check_plan(const Plan& plan, const at::Tensor& micro_bounds,
                                          const at::Device& device) {
  const char* names[13] = {"offsets",   "bag_ids", "uniques", "inverse", "sorted_positions",
                           "unique_offsets", "digits0", "digits1", "digits2", "parents1",
                           "parents2",  "child_offsets0", "child_offsets1"};
  const at::Tensor* tensors[13] = {&plan.offsets,   &plan.bag_ids,  &plan.uniques,  &plan.inverse,
                                   &plan.sorted_positions, &plan.unique_offsets, &plan.digits0,
                                   &plan.digits1,   &plan.digits2,  &plan.parents1, &plan.parents2,
                                   &plan.child_offsets0, &plan.child_offsets1};
  for (int i = 0; i < 13; ++i) check_index_tensor(*tensors[i], names[i], device);
  const int64_t nnz = plan.nnz(), num_uniques = plan.uniques.numel();
  const int64_t num_groups = plan.digits1.numel(), n0 = plan.digits0.numel();
  TORCH_CHECK(plan.offsets.numel() >= 1, "offsets must have B + 1 >= 1 entries");
  TORCH_CHECK(plan.bag_ids.numel() == nnz && plan.sorted_positions.numel() == nnz,
              "bag_ids, inverse and sorted_positions must all have nnz entries, got ", plan.bag_ids.numel(), ", ",
              nnz, ", ", plan.sorted_positions.numel());
  TORCH_CHECK(plan.unique_offsets.numel() == num_uniques + 1 && plan.digits2.numel() == num_uniques &&
                  plan.parents2.numel() == num_uniques,
              "unique_offsets must have U + 1 and digits2, parents2 U entries (U = uniques.numel() = ",
              num_uniques, ")");
  TORCH_CHECK(plan.parents1.numel() == num_groups && plan.child_offsets1.numel() == num_groups + 1,
              "parents1 must have G and child_offsets1 G + 1 entries (G = digits1.numel() = ", num_groups, ")");
  TORCH_CHECK(plan.child_offsets0.numel() == n0 + 1, "child_offsets0 must have n0 + 1 entries (n0 = ", n0, ")");

  TORCH_CHECK(micro_bounds.scalar_type() == at::kLong && micro_bounds.dim() == 2 && micro_bounds.size(1) == 8,
              "micro_bounds must be an int64 (M, 8) tensor, got ", micro_bounds.scalar_type(), " ",
              micro_bounds.sizes());
  at::Tensor host = micro_bounds.to(at::kCPU).contiguous();
  const int64_t* b = host.data_ptr<int64_t>();
  std::vector<MicroBound> bounds(host.size(0));
  int64_t previous_end = 0;
  for (size_t m = 0; m < bounds.size(); ++m) {
    const int64_t* row = b + 8 * m;
    MicroBound mb{row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]};
    TORCH_CHECK(mb.o_start == previous_end && mb.o_start < mb.o_end && mb.o_end <= nnz && 0 <= mb.a0 &&
                    mb.a0 < mb.b0 && mb.b0 <= n0 && 0 <= mb.a1 && mb.a1 < mb.b1 && mb.b1 <= num_groups &&
                    0 <= mb.u_start && mb.u_start < mb.u_end && mb.u_end <= num_uniques,
                "micro_bounds row ", m, " = [", row[0], ", ", row[1], ", ", row[2], ", ", row[3], ", ", row[4],
                ", ", row[5], ", ", row[6], ", ", row[7], "] is inconsistent with nnz=", nnz, ", n0=", n0,
                ", G=", num_groups, ", U=", num_uniques);
    previous_end = mb.o_end;
    bounds[m] = mb;
  }
  TORCH_CHECK(bounds.empty() ? nnz == 0 : previous_end == nnz,
              "micro_bounds must cover all nnz=", nnz, " occurrences");
  return bounds;
}

inline void check_per_sample_weights(const std::optional<at::Tensor>& w, const Plan& plan,
                                     const at::Tensor& core0, c10::string_view mode) {
  TORCH_CHECK(mode == "sum" || mode == "mean", "mode must be 'sum' or 'mean', got '", std::string(mode), "'");
  if (!w.has_value()) return;
  TORCH_CHECK(mode == "sum", "per_sample_weights need mode='sum'");
  TORCH_CHECK(w->device() == core0.device() && w->scalar_type() == core0.scalar_type() && w->dim() == 1 &&
                  w->numel() == plan.nnz(),
              "per_sample_weights must be a 1-D tensor of nnz=", plan.nnz(), " entries with the cores' dtype ",
              core0.scalar_type(), " on ", core0.device(), ", got ", w->scalar_type(), " ", w->sizes(), " on ",
              w->device());
}

// --------------------------------------------------------------------------------------------- device helpers

template <typename T, int V>
struct Vec {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ Vec<T, V> load_vec(const T* p) {
  Vec<T, V> out;
  if constexpr (V == 4 && std::is_same_v<T, float>) {
    const float4 f = *reinterpret_cast<const float4*>(p);
    out.v[0] = f.x;
    out.v[1] = f.y;
    out.v[2] = f.z;
    out.v[3] = f.w;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) out.v[i] = p[i];
  }
  return out;
}

template <typename T, int V>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, V>& x) {
  if constexpr (V == 4 && std::is_same_v<T, float>) {
    *reinterpret_cast<float4*>(p) = make_float4(x.v[0], x.v[1], x.v[2], x.v[3]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = x.v[i];
  }
}

// Lanes per row in the warp-per-item kernels: a power of two covering `chunks` vector chunks (at most 32);
// the warp then walks 32 / lanes items at a time and combines them with shuffles in a fixed order.
inline int lanes_per_row(int64_t chunks) {
  int lanes = 1;
  while (lanes < chunks && lanes < kWarpSize) lanes <<= 1;
  return lanes;
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// int64 min/max/clamp on the device without relying on the math library's overload set.
__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
__device__ __forceinline__ int64_t clamp64(int64_t x, int64_t lo, int64_t hi) { return min64(max64(x, lo), hi); }

// ------------------------------------------------------------------------------------ row-major batched GEMM

template <typename T>
struct CublasTypes;
template <>
struct CublasTypes<float> {
  static constexpr cudaDataType_t data = CUDA_R_32F;
  static constexpr cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
};
template <>
struct CublasTypes<double> {
  static constexpr cudaDataType_t data = CUDA_R_64F;
  static constexpr cublasComputeType_t compute = CUBLAS_COMPUTE_64F;
};

// C[i] = op(A[i]) op(B[i]) for i < batch, all row-major: op(A) is (m x k) (A stored (m x k), or (k x m) when
// trans_a), op(B) is (k x n) (B stored (k x n), or (n x k) when trans_b), C is (m x n). Pointer arrays live on
// the device. cuBLAS is column-major, so it computes C^T = op(B)^T op(A)^T. FP32 uses CUBLAS_COMPUTE_32F:
// TF32 tensor cores only if torch.backends.cuda.matmul.allow_tf32 is set (torch sets the handle's math mode).
template <typename T>
void gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* const* a,
                  const T* const* b, T* const* c, int64_t batch) {
  if (batch == 0) return;
  TORCH_CHECK(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX, "GEMM dimensions beyond 2^31");
  cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();
  const T alpha = 1, beta = 0;
  const int64_t lda = trans_a ? m : k;
  const int64_t ldb = trans_b ? k : n;
  constexpr int64_t kMaxBatch = int64_t{1} << 30;
  for (int64_t start = 0; start < batch; start += kMaxBatch) {
    const int count = static_cast<int>(std::min(kMaxBatch, batch - start));
    TORCH_CUDABLAS_CHECK(cublasGemmBatchedEx(
        handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
        static_cast<int>(m), static_cast<int>(k), &alpha, reinterpret_cast<const void* const*>(b + start),
        CublasTypes<T>::data, static_cast<int>(ldb), reinterpret_cast<const void* const*>(a + start),
        CublasTypes<T>::data, static_cast<int>(lda), &beta, reinterpret_cast<void* const*>(c + start),
        CublasTypes<T>::data, static_cast<int>(n), count, CublasTypes<T>::compute, CUBLAS_GEMM_DEFAULT));
  }
}

// Three device pointer arrays of `count` entries each, carved from one int64 tensor.
template <typename T>
struct PointerArrays {
  at::Tensor storage;
  const T** a;
  const T** b;
  T** c;

  PointerArrays(int64_t count, const at::Device& device)
      : storage(at::empty({3 * std::max<int64_t>(count, 1)}, at::TensorOptions().dtype(at::kLong).device(device))) {
    auto* base = reinterpret_cast<T**>(storage.data_ptr<int64_t>());
    const int64_t n = std::max<int64_t>(count, 1);
    a = const_cast<const T**>(base);
    b = const_cast<const T**>(base + n);
    c = base + 2 * n;
  }
};

// ------------------------------------------------------------------------- kernels shared by forward/backward

// Prefix products of one micro-batch: T01[i] = G0[I0(g)] (q0 x r1) @ G1[I1(g)] (r1 x q1 r2) for the groups
// g = a1 + i, i < n (T01 rows: (q0 q1, r2) row-major, prefix_len apart).
template <typename T>
__global__ void prefix_pointers_kernel(const T* __restrict__ core0, const T* __restrict__ core1,
                                       const int64_t* __restrict__ digits0, const int64_t* __restrict__ digits1,
                                       const int64_t* __restrict__ parents1, int64_t a1, int64_t n, int64_t p0,
                                       int64_t p1, int64_t row0, int64_t row1, T* t01, int64_t prefix_len,
                                       const T** pa, const T** pb, T** pc) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t g = a1 + i;
  const int64_t i0 = digits0[parents1[g]];
  const int64_t i1 = digits1[g];
  CUDA_KERNEL_ASSERT(0 <= i0 && i0 < p0 && 0 <= i1 && i1 < p1);
  pa[i] = core0 + i0 * row0;
  pb[i] = core1 + i1 * row1;
  pc[i] = t01 + i * prefix_len;
}

template <typename T>
void compute_prefix_products(const TTDims& d, const T* core0, const T* core1, const Plan& plan,
                             const MicroBound& mb, T* t01, PointerArrays<T>& ptrs, cudaStream_t stream) {
  const int64_t n = mb.groups();
  prefix_pointers_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(
      core0, core1, plan.digits0.data_ptr<int64_t>(), plan.digits1.data_ptr<int64_t>(),
      plan.parents1.data_ptr<int64_t>(), mb.a1, n, d.p0, d.p1, d.row0(), d.row1(), t01, d.prefix_len(), ptrs.a,
      ptrs.b, ptrs.c);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  gemm_batched<T>(false, false, d.q0, d.q1 * d.r2, d.r1, ptrs.a, ptrs.b, ptrs.c, n);
}

}  // namespace ecorec
