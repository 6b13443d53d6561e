// CUDA kernels of the torch.ops.ecorec TT operators.
//
// The operator schemas, their fake (meta) implementations, CPU kernels and autograd formula are defined in
// Python (ecorec/tt/custom_ops.py); this library adds the CUDA kernels only. The dispatcher checks each C++
// signature against its schema when the library loads, so a mismatch fails the load, not a later call.
#include <Python.h>
#include <torch/library.h>

#include "tt_ops.h"

TORCH_LIBRARY_IMPL(ecorec, CUDA, m) {
  m.impl("tt_plan", &ecorec::tt_plan_cuda);
  m.impl("tt_forward", &ecorec::tt_forward_cuda);
  m.impl("tt_backward", &ecorec::tt_backward_cuda);
  m.impl("tt_sgd_update_", &ecorec::tt_sgd_update_cuda);
  m.impl("tt_adagrad_update_", &ecorec::tt_adagrad_update_cuda);
  m.impl("tt_rowwise_adagrad_update_", &ecorec::tt_rowwise_adagrad_update_cuda);
}

// The library is loaded for its registrations (torch.ops.load_library by the JIT build, or `import
// ecorec._tt_cuda` when setup.py built it); an empty module makes the import form work.
#define ECOREC_CONCAT_(a, b) a##b
#define ECOREC_CONCAT(a, b) ECOREC_CONCAT_(a, b)
#define ECOREC_STRINGIFY_(a) #a
#define ECOREC_STRINGIFY(a) ECOREC_STRINGIFY_(a)

PyMODINIT_FUNC ECOREC_CONCAT(PyInit_, TORCH_EXTENSION_NAME)(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, ECOREC_STRINGIFY(TORCH_EXTENSION_NAME),
                               "CUDA kernels of torch.ops.ecorec (registered on import)", -1, nullptr};
  return PyModule_Create(&module);
}
