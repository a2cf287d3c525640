// bench times ggml_quantize_chunk on one thread for every type the Go package encodes, without
// and with an importance vector, on 64 rows of 4096 Gaussian weights (σ 0.02, as
// BenchmarkQuantize): MB of float32 per second of CPU time, comparable with the benchmark's
// MB/cpu-s. Built and run as README.md says.
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ggml.h"

static uint64_t s = 88172645463325252ull;
static double u(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (s >> 11) * (1.0 / 9007199254740992.0); }
static double cpu_now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(void) {
    const int rows = 64, cols = 4096;
    const size_t n = (size_t)rows * cols;
    float * x = malloc(n * sizeof(float)), * im = malloc(cols * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = 0.02 * sqrt(-2 * log(u() + 1e-300)) * cos(6.283185307179586 * u());
    for (int i = 0; i < cols; i++) im[i] = -log(u() + 1e-300);
    const enum ggml_type ts[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q2_K,
                                 GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS};
    void * dst = malloc(n * sizeof(float));
    for (int k = 0; k < (int)(sizeof(ts) / sizeof(ts[0])); k++) {
        for (int w = 0; w < 2; w++) {
            int reps = 0;
            double t0 = cpu_now(), t;
            do {
                ggml_quantize_chunk(ts[k], x, dst, 0, rows, cols, w ? im : NULL);
                reps++;
                t = cpu_now() - t0;
            } while (t < 1.0);
            printf("%-7s%-9s %8.1f MB/cpu-s\n", ggml_type_name(ts[k]), w ? "+imatrix" : "", reps * n * sizeof(float) / t / 1e6);
        }
    }
    return 0;
}
