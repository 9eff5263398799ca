// cpuid through GCC's __builtin_cpu_supports; the level is fixed on first use so every kernel of a
// process takes the same path.
#include "base/cpu.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static mm_cpu_features features;
static mm_simd_level supported, active;
static int amx_active;
static mm_tiles tiles;
static int ready;

// Linux hands out the 8 KB tile state only to processes that ask (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA); without the grant the first tile instruction faults. Asked once, for every thread.
static int amx_granted(void) {
#if defined(__linux__) && defined(__x86_64__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return 0;
#endif
}

static void detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    features.avx2 = !!__builtin_cpu_supports("avx2");
    features.fma = !!__builtin_cpu_supports("fma");
    // F16C has no __builtin_cpu_supports name in every GCC; every AVX2 processor made has it, and the
    // AVX2 path requires it, so read it from cpuid leaf 1 ECX bit 29 directly.
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    features.f16c = (c >> 29) & 1;
    features.avx512f = !!__builtin_cpu_supports("avx512f");
    features.avx512bw = !!__builtin_cpu_supports("avx512bw");
    features.avx512vl = !!__builtin_cpu_supports("avx512vl");
    features.avx512vnni = !!__builtin_cpu_supports("avx512vnni");
    features.avx512bf16 = !!__builtin_cpu_supports("avx512bf16");
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    if (a >= 7) {
        unsigned osxsave = 0;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
        osxsave = (c >> 27) & 1;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
        features.amx_bf16 = (d >> 22) & 1;
        features.amx_tile = (d >> 24) & 1;
        if (features.amx_tile && osxsave) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            // XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA): the kernel saves tile state across switches.
            features.amx_os = ((lo >> 17) & 3) == 3 && amx_granted();
        }
    }
#endif
    supported = MM_SIMD_SCALAR;
    if (features.avx2 && features.fma && features.f16c) {
        supported = MM_SIMD_AVX2;
        if (features.avx512f && features.avx512bw && features.avx512vl && features.avx512vnni)
            supported = MM_SIMD_AVX512;
    }
    // AVX-512 only when asked for: its kernels (Q8_0/Q4_0 in 512 bits) decoded a 7B-shaped q8_0 model ~4%
    // slower than AVX2's on a 2-core Sapphire-Rapids-class machine (3.02-3.08 vs 2.90-2.92 tokens/s, two
    // interleaved pairs) and were 5-12% faster only for batched rows.
    active = supported > MM_SIMD_AVX2 ? MM_SIMD_AVX2 : supported;
    const char *cap = getenv("MMGPT_SIMD");
    if (cap) {
        mm_simd_level want = active;
        if (!strcmp(cap, "scalar"))
            want = MM_SIMD_SCALAR;
        else if (!strcmp(cap, "avx2"))
            want = MM_SIMD_AVX2;
        else if (!strcmp(cap, "avx512"))
            want = MM_SIMD_AVX512;
        active = want < supported ? want : supported;
    }
    const char *amx = getenv("MMGPT_AMX");
    int bf16 = features.avx512bf16 && features.avx512f && features.avx512bw && features.avx512vl &&
               active > MM_SIMD_SCALAR && !(amx && !strcmp(amx, "0"));
    amx_active = bf16 && features.amx_tile && features.amx_bf16 && features.amx_os;
    tiles = amx_active ? MM_TILES_AMX : bf16 ? MM_TILES_AVX512_BF16 : MM_TILES_NONE;
}

static void ensure(void) {
    // Racing first calls all compute the same values; the flag is only an optimisation.
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
#pragma omp critical(mm_cpu_detect)
        {
            if (!ready) {
                detect();
                __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
            }
        }
    }
}

const mm_cpu_features *mm_cpu_features_get(void) {
    ensure();
    return &features;
}

mm_simd_level mm_simd_supported(void) {
    ensure();
    return supported;
}

mm_simd_level mm_simd_active(void) {
    ensure();
    return active;
}

int mm_amx_active(void) {
    ensure();
    return amx_active;
}

mm_tiles mm_bf16_tiles(void) {
    ensure();
    return tiles;
}

const char *mm_simd_name(mm_simd_level l) {
    switch (l) {
    case MM_SIMD_AVX2:
        return "avx2";
    case MM_SIMD_AVX512:
        return "avx512";
    default:
        return "scalar";
    }
}
