// gram_factors on the device: the eigen-decompositions of a batch of small symmetric matrices
// (lowrank's Gram matrices, 16×16 for lowrank:8) in double, then the scaled eigenvector
// columns, so lowrank's subspace iteration never waits for the host: a warp per matrix running
// cyclic Jacobi (gram_factors_jacobi, the default), or cuSOLVER's batched Jacobi solver
// (gram_factors, ADAPTERLENS_CUDA_EIGEN=cusolver). CPU reference: gram_factors_host in
// linalg.cpp (sym_eigen, double).
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
  for (int e = threadIdx.x; e < n * k; e += blockDim.x) {
    const int i = e / k, j = e % k, q = n - 1 - j;
    const bool kept = w[q] > 1e-12 * top && w[q] > 0.0;
    const double s = kept ? sqrt(w[q]) : 0.0;
    const double x = v[i + static_cast<int64_t>(q) * n];
    const int64_t at = static_cast<int64_t>(p) * n * k + e;
    inv_scaled[at] = kept ? static_cast<float>(x / s) : 0.0f;
    if (scaled) scaled[at] = kept ? static_cast<float>(x * s) : 0.0f;
  }
}

// One warp per matrix (n ≤ 32, lane i owning row/column i): cyclic Jacobi in double on A and
// V in shared memory (Golub & Van Loan, Algorithm 8.4.3: each rotation zeroes a_pq, A ← JᵀAJ,
// V ← VJ), sweeps until the off-diagonal norm is below 1e-15·‖A‖ (at most 30); then the
// eigenpairs in descending order into the factors, as factors_k writes them. One launch where
// cuSOLVER's batched solver took several, with their host work, per call.
constexpr int kJacobiMaxSweeps = 30;
__global__ void __launch_bounds__(32) jacobi_factors_k(float* inv_scaled, float* scaled, const float* g, int n, int k) {
  __shared__ double A[kBatchedEigenMax][kBatchedEigenMax + 1];
  __shared__ double V[kBatchedEigenMax][kBatchedEigenMax + 1];
  const int p0 = blockIdx.x, i = threadIdx.x;
  const bool mine = i < n;
  const float* gp = g + static_cast<int64_t>(p0) * n * n;
  for (int j = 0; j < n; ++j) {
    if (mine) {
      A[i][j] = gp[i * n + j];
      V[i][j] = i == j ? 1.0 : 0.0;
    }
  }
  __syncwarp();
  double norm2 = 0.0;  // ‖A‖_F², which rotations keep
  if (mine)
    for (int j = 0; j < n; ++j) norm2 += A[i][j] * A[i][j];
  for (int o = 16; o > 0; o >>= 1) norm2 += __shfl_xor_sync(0xffffffffu, norm2, o);
  // Lane 0's sums for every lane: a butterfly may round differently per lane, and the lanes
  // must take the same branch below.
  norm2 = __shfl_sync(0xffffffffu, norm2, 0);
  for (int sweep = 0; sweep < kJacobiMaxSweeps; ++sweep) {
    double off = 0.0;
    if (mine)
      for (int j = 0; j < n; ++j) off += j == i ? 0.0 : A[i][j] * A[i][j];
    for (int o = 16; o > 0; o >>= 1) off += __shfl_xor_sync(0xffffffffu, off, o);
    off = __shfl_sync(0xffffffffu, off, 0);
    if (!(off > 1e-30 * norm2)) break;  // also ends on a zero matrix
    for (int p = 0; p < n - 1; ++p) {
      for (int q = p + 1; q < n; ++q) {
        const double apq = A[p][q];
        if (apq == 0.0) continue;  // the same shared value for every lane: uniform
        const double tau = (A[q][q] - A[p][p]) / (2.0 * apq);
        const double t = (tau >= 0.0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
        const double c = 1.0 / sqrt(1.0 + t * t), s = t * c;
        __syncwarp();  // every lane has read A[p][q], A[p][p], A[q][q]
        if (mine) {  // columns p and q: A ← A·J, V ← V·J
          const double aip = A[i][p], aiq = A[i][q];
          A[i][p] = c * aip - s * aiq;
          A[i][q] = s * aip + c * aiq;
          const double vip = V[i][p], viq = V[i][q];
          V[i][p] = c * vip - s * viq;
          V[i][q] = s * vip + c * viq;
        }
        __syncwarp();
        if (mine) {  // rows p and q: A ← Jᵀ·A
          const double api = A[p][i], aqi = A[q][i];
          A[p][i] = c * api - s * aqi;
          A[q][i] = s * api + c * aqi;
        }
        __syncwarp();
        if (i == 0) A[p][q] = A[q][p] = 0.0;
        __syncwarp();
      }
    }
  }
  // Lane i's eigenpair (A[i][i], column i of V) goes to column `rank` of the descending order.
  const double lam = mine ? A[i][i] : -INFINITY;
  double top = lam;
  for (int o = 16; o > 0; o >>= 1) top = fmax(top, __shfl_xor_sync(0xffffffffu, top, o));
  top = fmax(top, 0.0);
  int rank = 0;
  for (int j = 0; j < 32; ++j) {
    const double lj = __shfl_sync(0xffffffffu, lam, j);
    rank += j < n && (lj > lam || (lj == lam && j < i)) ? 1 : 0;
  }
  if (!mine || rank >= k) return;
  const bool kept = lam > 1e-12 * top && lam > 0.0;
  const double sq = kept ? sqrt(lam) : 0.0;
  const int64_t base = static_cast<int64_t>(p0) * n * k;
  for (int r = 0; r < n; ++r) {
    const double x = V[r][i];
    inv_scaled[base + static_cast<int64_t>(r) * k + rank] = kept ? static_cast<float>(x / sq) : 0.0f;
    if (scaled) scaled[base + static_cast<int64_t>(r) * k + rank] = kept ? static_cast<float>(x * sq) : 0.0f;
  }
}

}  // namespace

void gram_factors_jacobi(int count, int n, int k, const float* g, float* inv_scaled, float* scaled, cudaStream_t s) {
  if (count == 0 || k == 0) return;
  if (n > kBatchedEigenMax) throw std::logic_error("gram_factors: batched eigen-decompositions up to 32×32");
  jacobi_factors_k<<<count, 32, 0, s>>>(inv_scaled, scaled, g, n, k);
  check("gram_factors (Jacobi)");
}

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
