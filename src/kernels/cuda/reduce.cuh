// Warp and block reductions for the row kernels. Every thread gets the block's total, summed in a
// fixed order, so results do not depend on scheduling (bit-exact resume on the same device).
#ifndef MM_CUDA_REDUCE_CUH
#define MM_CUDA_REDUCE_CUH

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T> __device__ __forceinline__ T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) {
        T u = __shfl_xor_sync(0xffffffffu, v, o);
        v = u > v ? u : v;
    }
    return v;
}

// blockDim.x must be a multiple of 32 (at most 1024); sh holds 32 values. Safe to call repeatedly
// with the same sh: the first barrier keeps a previous call's readers ahead of this call's writers.
template <typename T> __device__ __forceinline__ T block_sum(T v, T *sh) {
    v = warp_sum(v);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    T t = 0;
    for (int i = 0; i < nw; i++)
        t += sh[i];
    return t;
}

template <typename T> __device__ __forceinline__ T block_max(T v, T *sh) {
    v = warp_max(v);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    T t = sh[0];
    for (int i = 1; i < nw; i++)
        t = sh[i] > t ? sh[i] : t;
    return t;
}

#endif
