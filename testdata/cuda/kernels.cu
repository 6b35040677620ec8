extern "C" __global__ void addone(float *x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] += 1.0f; }
extern "C" __global__ void twice(float *x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] *= 2.0f; }
extern "C" int launch_addone(float *x, int n) { addone<<<(n+255)/256, 256>>>(x, n); return 0; }
