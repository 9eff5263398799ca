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

// Leaves each warp's value v in sh[warp] for every thread to read; returns the number of warps.
// blockDim.x must be a multiple of 32 (at most 1024); sh holds 32 values. Safe to call repeatedly
// with the same sh: the first barrier keeps a previous call's readers ahead of this call's writers.
template <typename T> __device__ __forceinline__ int block_stage(T v, T *sh) {
    __syncthreads();
    if ((threadIdx.x & 31) == 0)
        sh[threadIdx.x >> 5] = v;
    __syncthreads();
    return blockDim.x >> 5;
}

template <typename T> __device__ __forceinline__ T block_sum(T v, T *sh) {
    int nw = block_stage(warp_sum(v), sh);
    T t = 0;
    for (int i = 0; i < nw; i++)
        t += sh[i];
    return t;
}

template <typename T> __device__ __forceinline__ T block_max(T v, T *sh) {
    int nw = block_stage(warp_max(v), sh);
    T t = sh[0];
    for (int i = 1; i < nw; i++)
        t = sh[i] > t ? sh[i] : t;
    return t;
}

#endif
