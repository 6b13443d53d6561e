// Fused optimizer updates of one TT core in place (the math of ecorec/tt/optim.py), applied once per batch to
// the dense core gradient (rows the batch did not touch have a zero gradient and keep their values):
//
//   sgd:             W -= lr g
//   adagrad:         S += g^2;                  W -= lr g / (sqrt(S) + eps)        (per element)
//   rowwise_adagrad: s[i] += mean_j g[i, j]^2;  W[i] -= lr g[i] / (sqrt(s[i]) + eps)
#include "tt_common.cuh"

namespace ecorec {
namespace {

template <typename T>
__global__ void sgd_kernel(T* __restrict__ core, const T* __restrict__ grad, int64_t n, T lr) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    core[i] -= lr * grad[i];
  }
}

template <typename T>
__global__ void adagrad_kernel(T* __restrict__ core, T* __restrict__ state, const T* __restrict__ grad, int64_t n,
                               T lr, T eps) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const T g = grad[i];
    const T s = state[i] + g * g;
    state[i] = s;
    core[i] -= lr * (g / (sqrt(s) + eps));
  }
}

// One block per row: the mean of g^2 over the row (fixed-order tree sum in shared memory), then the update.
template <typename T>
__global__ void rowwise_adagrad_kernel(T* __restrict__ core, T* __restrict__ state, const T* __restrict__ grad,
                                       int64_t width, T lr, T eps) {
  __shared__ T partial[kThreads];
  const int64_t row = blockIdx.x;
  const T* g = grad + row * width;
  T sum = T(0);
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) sum += g[c] * g[c];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const T updated = state[row] + partial[0] / static_cast<T>(width);
  const T denom = sqrt(updated) + eps;
  __syncthreads();  // every thread has read state[row] before thread 0 writes it
  if (threadIdx.x == 0) state[row] = updated;
  T* w = core + row * width;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) w[c] -= lr * (g[c] / denom);
}

void check_update(const at::Tensor& core, const at::Tensor& grad, const at::Tensor* state, bool rowwise) {
  TORCH_CHECK(core.is_cuda(), "core must be a CUDA tensor, got ", core.device());
  TORCH_CHECK(core.scalar_type() == at::kFloat || core.scalar_type() == at::kDouble,
              "the CUDA TT updates support float32 and float64 cores, got ", core.scalar_type());
  TORCH_CHECK(core.is_contiguous() && core.dim() == 2, "core must be a contiguous 2-D tensor (p, C), got ",
              core.sizes());
  TORCH_CHECK(grad.device() == core.device() && grad.scalar_type() == core.scalar_type() &&
                  grad.sizes() == core.sizes(),
              "grad must match core (", core.scalar_type(), " ", core.sizes(), " on ", core.device(), "), got ",
              grad.scalar_type(), " ", grad.sizes(), " on ", grad.device());
  if (state == nullptr) return;
  TORCH_CHECK(state->device() == core.device() && state->scalar_type() == core.scalar_type() &&
                  state->is_contiguous(),
              "state must be a contiguous tensor of the core's dtype on its device");
  if (rowwise) {
    TORCH_CHECK(state->dim() == 1 && state->size(0) == core.size(0), "row-wise state must have shape (",
                core.size(0), ",), got ", state->sizes());
  } else {
    TORCH_CHECK(state->sizes() == core.sizes(), "state must have the core's shape ", core.sizes(), ", got ",
                state->sizes());
  }
}

unsigned int elementwise_blocks(int64_t n) {
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(ceil_div(n, kThreads), 1), 65536));
}

}  // namespace

void tt_sgd_update_cuda(at::Tensor& core, const at::Tensor& grad_in, double lr) {
  check_update(core, grad_in, nullptr, false);
  c10::cuda::CUDAGuard guard(core.device());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t n = core.numel();
  if (n == 0) return;
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(core.scalar_type(), "ecorec::tt_sgd_update_", [&] {
    sgd_kernel<scalar_t><<<elementwise_blocks(n), kThreads, 0, stream>>>(
        core.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), n, static_cast<scalar_t>(lr));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void tt_adagrad_update_cuda(at::Tensor& core, at::Tensor& state, const at::Tensor& grad_in, double lr, double eps) {
  check_update(core, grad_in, &state, false);
  c10::cuda::CUDAGuard guard(core.device());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t n = core.numel();
  if (n == 0) return;
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(core.scalar_type(), "ecorec::tt_adagrad_update_", [&] {
    adagrad_kernel<scalar_t><<<elementwise_blocks(n), kThreads, 0, stream>>>(
        core.data_ptr<scalar_t>(), state.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), n,
        static_cast<scalar_t>(lr), static_cast<scalar_t>(eps));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void tt_rowwise_adagrad_update_cuda(at::Tensor& core, at::Tensor& state, const at::Tensor& grad_in, double lr,
                                    double eps) {
  check_update(core, grad_in, &state, true);
  c10::cuda::CUDAGuard guard(core.device());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t rows = core.size(0), width = core.size(1);
  if (rows == 0 || width == 0) return;
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(core.scalar_type(), "ecorec::tt_rowwise_adagrad_update_", [&] {
    rowwise_adagrad_kernel<scalar_t><<<static_cast<unsigned int>(rows), kThreads, 0, stream>>>(
        core.data_ptr<scalar_t>(), state.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), width,
        static_cast<scalar_t>(lr), static_cast<scalar_t>(eps));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace ecorec
