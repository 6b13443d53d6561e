// Host entry points of the ecorec TT operators on CUDA (registered in tt_registration.cpp).
//
// The schemas live in Python (ecorec/tt/custom_ops.py, torch.library.define); these functions are the CUDA
// kernels of those ops, and their C++ signatures must match the schemas (the dispatcher checks this when the
// library loads). Shape letters: B bags, nnz indices, U unique rows, G prefix groups (distinct (I0, I1)),
// n0 distinct first digits, M micro-batches; TT order 3 with cores
// core0 (p0, q0 r1), core1 (p1, r1 q1 r2), core2 (p2, r2 q2); Q = q0 q1 q2 >= D.
//
// The plan is the tensors of ecorec.tt.indexing.TTLookupPlan for d = 3, in this order:
//   offsets (B+1), bag_ids (nnz), uniques (U), inverse (nnz), sorted_positions (nnz), unique_offsets (U+1),
//   digits0 (n0), digits1 (G), digits2 (U), parents1 (G), parents2 (U), child_offsets0 (n0+1),
//   child_offsets1 (G+1), micro_bounds (M, 8) int64 on the host:
//   [o_start, o_end, a0, b0, a1, b1, u_start, u_end] per micro-batch.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

namespace ecorec {

using PlanTuple = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                             at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Sort-unique, prefix levels by flag + scan, micro-batch bounds on the device; one device->host copy.
// Returns (bag_ids, uniques, inverse, sorted_positions, unique_offsets, digits0, digits1, digits2, parents1,
// parents2, child_offsets0, child_offsets1, micro_bounds[host]).
PlanTuple tt_plan_cuda(const at::Tensor& indices, const at::Tensor& offsets, at::IntArrayRef p_shapes,
                       int64_t micro_batches, std::optional<int64_t> max_micro_uniques);

// Pooled embeddings (B, D).
at::Tensor tt_forward_cuda(const at::Tensor& core0, const at::Tensor& core1, const at::Tensor& core2,
                           const at::Tensor& offsets, const at::Tensor& bag_ids, const at::Tensor& uniques,
                           const at::Tensor& inverse, const at::Tensor& sorted_positions,
                           const at::Tensor& unique_offsets, const at::Tensor& digits0, const at::Tensor& digits1,
                           const at::Tensor& digits2, const at::Tensor& parents1, const at::Tensor& parents2,
                           const at::Tensor& child_offsets0, const at::Tensor& child_offsets1,
                           const at::Tensor& micro_bounds, const std::optional<at::Tensor>& per_sample_weights,
                           at::IntArrayRef q_shapes, at::IntArrayRef ranks, int64_t embedding_dim,
                           c10::string_view mode);

// Dense core gradients (d_core0, d_core1, d_core2), summed over the micro-batches.
std::tuple<at::Tensor, at::Tensor, at::Tensor> tt_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& core0, const at::Tensor& core1, const at::Tensor& core2,
    const at::Tensor& offsets, const at::Tensor& bag_ids, const at::Tensor& uniques, const at::Tensor& inverse,
    const at::Tensor& sorted_positions, const at::Tensor& unique_offsets, const at::Tensor& digits0,
    const at::Tensor& digits1, const at::Tensor& digits2, const at::Tensor& parents1, const at::Tensor& parents2,
    const at::Tensor& child_offsets0, const at::Tensor& child_offsets1, const at::Tensor& micro_bounds,
    const std::optional<at::Tensor>& per_sample_weights, at::IntArrayRef q_shapes, at::IntArrayRef ranks,
    int64_t embedding_dim, c10::string_view mode, bool deterministic);

// In-place fused updates of one core (and its state), the math of ecorec/tt/optim.py.
void tt_sgd_update_cuda(at::Tensor& core, const at::Tensor& grad, double lr);
void tt_adagrad_update_cuda(at::Tensor& core, at::Tensor& state, const at::Tensor& grad, double lr, double eps);
void tt_rowwise_adagrad_update_cuda(at::Tensor& core, at::Tensor& state, const at::Tensor& grad, double lr,
                                    double eps);

}  // namespace ecorec
