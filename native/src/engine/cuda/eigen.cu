// gram_factors on the device: the eigen-decompositions of a batch of small symmetric matrices
// (lowrank's Gram matrices, 16×16 for lowrank:8) through cuSOLVER's batched Jacobi solver in
// double, then the scaled eigenvector columns, so lowrank's subspace iteration never waits for
// the host. CPU reference: gram_factors_host in linalg.cpp (sym_eigen, double).
#include <cusolverDn.h>

#include <algorithm>
#include <string>

#include "engine/cuda/common.cuh"

namespace al::cuda {

namespace {

void cks(cusolverStatus_t s, const char* what) {
  if (s != CUSOLVER_STATUS_SUCCESS) throw std::runtime_error(std::string("cuSOLVER error ") + std::to_string(s) + " during " + what);
}

__global__ void widen_k(double* out, const float* in, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = in[i];
}

// Block per matrix: column j < k of inv_scaled (and scaled) from the j-th largest eigenpair.
// syevj leaves eigenvalues ascending and eigenvectors as the columns of a column-major
// matrix (component i of vector q at i + q·n); the reference's order is descending.
__global__ void factors_k(float* inv_scaled, float* scaled, const double* vecs, const double* vals, int n, int k) {
  const int p = blockIdx.x;
  const double* v = vecs + static_cast<int64_t>(p) * n * n;
  const double* w = vals + static_cast<int64_t>(p) * n;
  const double top = fmax(w[n - 1], 0.0);
  // A matrix with a non-finite eigenvalue (a NaN or infinite Gram matrix: the host reference
  // throws on it) gets NaN factors, so what is built from them shows it rather than zeros.
  bool finite = true;
  for (int j = 0; j < n; ++j) finite = finite && isfinite(w[j]);
  for (int e = threadIdx.x; e < n * k; e += blockDim.x) {
    const int i = e / k, j = e % k, q = n - 1 - j;
    const bool kept = w[q] > 1e-12 * top && w[q] > 0.0;
    const double s = kept ? sqrt(w[q]) : 0.0;
    const double x = v[i + static_cast<int64_t>(q) * n];
    const int64_t at = static_cast<int64_t>(p) * n * k + e;
    const float nan = __int_as_float(0x7fc00000);
    inv_scaled[at] = !finite ? nan : kept ? static_cast<float>(x / s) : 0.0f;
    if (scaled) scaled[at] = !finite ? nan : kept ? static_cast<float>(x * s) : 0.0f;
  }
}

}  // namespace

void EigenSolver::start(cudaStream_t s) {
  if (handle) return;
  cks(cusolverDnCreate(&handle), "cusolverDnCreate");
  cks(cusolverDnSetStream(handle, s), "cusolverDnSetStream");
  cks(cusolverDnCreateSyevjInfo(&params), "cusolverDnCreateSyevjInfo");
  cks(cusolverDnXsyevjSetSortEig(params, 1), "cusolverDnXsyevjSetSortEig");
}

size_t gram_factors_scratch(EigenSolver& es, cudaStream_t s, int count, int n) {
  es.start(s);
  int lwork = 0;
  cks(cusolverDnDsyevjBatched_bufferSize(es.handle, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, nullptr, n,
                                         nullptr, &lwork, es.params, count),
      "cusolverDnDsyevjBatched_bufferSize");
  // Bytes: the matrices and eigenvalues in double, the solver's workspace, one int a matrix.
  return sizeof(double) * (static_cast<size_t>(count) * n * n + static_cast<size_t>(count) * n + std::max(lwork, 1)) +
         sizeof(int) * static_cast<size_t>(count);
}

void gram_factors(EigenSolver& es, int count, int n, int k, const float* g, float* inv_scaled, float* scaled,
                  void* scratch, size_t scratch_bytes, cudaStream_t s) {
  if (count == 0 || k == 0) return;
  if (n > kBatchedEigenMax) throw std::logic_error("gram_factors: batched eigen-decompositions up to 32×32");
  es.start(s);
  double* a = static_cast<double*>(scratch);
  double* w = a + static_cast<size_t>(count) * n * n;
  double* work = w + static_cast<size_t>(count) * n;
  const size_t fixed = sizeof(double) * (static_cast<size_t>(count) * n * n + static_cast<size_t>(count) * n) + sizeof(int) * count;
  const int lwork = static_cast<int>((scratch_bytes - fixed) / sizeof(double));
  int* info = reinterpret_cast<int*>(work + lwork);
  const int64_t values = static_cast<int64_t>(count) * n * n;
  widen_k<<<blocks_for(values, kThreads), kThreads, 0, s>>>(a, g, values);
  check("gram_factors (widen)");
  cks(cusolverDnDsyevjBatched(es.handle, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, a, n, w, work, lwork, info,
                              es.params, count),
      "cusolverDnDsyevjBatched");
  factors_k<<<count, 128, 0, s>>>(inv_scaled, scaled, a, w, n, k);
  check("gram_factors (factors)");
}

}  // namespace al::cuda
