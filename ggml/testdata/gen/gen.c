// gen writes ggml/testdata/fixtures.bin.gz's uncompressed content to stdout: ggml's own encodings
// (ggml_quantize_chunk, the function llama-quantize calls) of deterministic rows for every type
// the Go package encodes, with and without an importance vector, and ggml's decodings
// (type_traits->to_float) of random blocks. See README.md for how it is built and run.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

static const enum ggml_type types[] = {
    GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
    GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K,
    GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS,
};
#define NTYPES (int)(sizeof(types) / sizeof(types[0]))

// xorshift64*: a deterministic generator, independent of the C library.
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static float uniform(void) { return (float)((next_u64() >> 40) * (1.0 / 16777216.0)); } // [0, 1)
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 12; i++) s += uniform();
    return s - 6.0f;  // Irwin–Hall: mean 0, variance 1
}

static void put_u32(uint32_t v) { fwrite(&v, 4, 1, stdout); }
static void put_bytes(const void * p, size_t n) { fwrite(p, 1, n, stdout); }

static uint64_t fnv1a(const void * p, size_t n) {
    const uint8_t * b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}

// A case: rows × cols values and an optional importance vector.
struct fcase {
    const char * name;
    int rows, cols;
    float * x;
    float * imatrix;
    int same_as;  // index of the case whose values these are (written once), or -1
    int floats;   // also encode as F32, F16 and BF16
};

#define MAXCASES 64
static struct fcase cases[MAXCASES];
static int ncases = 0;

static struct fcase * add_case(const char * name, int rows, int cols) {
    struct fcase * c = &cases[ncases++];
    c->name = name;
    c->rows = rows;
    c->cols = cols;
    c->x = calloc((size_t)rows * cols, sizeof(float));
    c->imatrix = NULL;
    c->same_as = -1;
    c->floats = 0;
    return c;
}

// with_imatrix adds a copy of c with a random positive importance vector (exp of a Gaussian,
// as activations' mean squares spread), zeros at the columns where zero_every divides the index
// (0: none).
static void with_imatrix(const struct fcase * c, const char * name, int zero_every) {
    int src = (int)(c - cases);
    struct fcase * d = add_case(name, c->rows, c->cols);
    memcpy(d->x, c->x, sizeof(float) * c->rows * c->cols);
    d->same_as = src;
    d->imatrix = malloc(sizeof(float) * c->cols);
    for (int i = 0; i < c->cols; i++) {
        d->imatrix[i] = expf(1.5f * gauss());
        if (zero_every && i % zero_every == 0) d->imatrix[i] = 0;
    }
}

static void fill_gauss(struct fcase * c, float sigma) {
    for (int i = 0; i < c->rows * c->cols; i++) c->x[i] = sigma * gauss();
}

static void build_cases(void) {
    struct fcase * c;

    c = add_case("normal", 4, 512);
    fill_gauss(c, 0.02f);
    c->floats = 1;
    with_imatrix(c, "normal+imatrix", 0);
    with_imatrix(c, "normal+imatrix-zeros", 4);

    c = add_case("outliers", 2, 256);
    fill_gauss(c, 0.02f);
    for (int i = 0; i < 2 * 256; i += 37) c->x[i] = (i % 2 ? 1.0f : -1.0f) * (0.5f + uniform());
    with_imatrix(c, "outliers+imatrix", 0);

    c = add_case("zeros", 1, 256);
    with_imatrix(c, "zeros+imatrix", 0);

    c = add_case("zero-subblocks", 1, 512);
    fill_gauss(c, 0.05f);
    for (int i = 0; i < 16; i++) c->x[i] = 0;          // a zero 16-block
    for (int i = 64; i < 96; i++) c->x[i] = 0;         // a zero 32-block
    for (int i = 256; i < 512; i++) if (i % 2) c->x[i] = 0;
    with_imatrix(c, "zero-subblocks+imatrix", 0);

    c = add_case("constant", 2, 256);
    for (int i = 0; i < 256; i++) { c->x[i] = 0.5f; c->x[256 + i] = -0.25f; }
    with_imatrix(c, "constant+imatrix", 0);

    c = add_case("tiny", 2, 256);
    for (int i = 0; i < 256; i++) { c->x[i] = 1e-6f * gauss(); c->x[256 + i] = 1e-20f * gauss(); }
    c->floats = 1;
    with_imatrix(c, "tiny+imatrix", 0);

    c = add_case("huge", 1, 256);
    fill_gauss(c, 3e5f);
    c->floats = 1;
    with_imatrix(c, "huge+imatrix", 0);

    c = add_case("one-signed", 2, 256);
    for (int i = 0; i < 256; i++) { c->x[i] = uniform(); c->x[256 + i] = -uniform(); }
    with_imatrix(c, "one-signed+imatrix", 0);

    c = add_case("ties", 2, 256);  // small multiples of 1/8: exact halves for the rounding
    for (int i = 0; i < 512; i++) c->x[i] = (float)((int)(next_u64() % 17) - 8) / 8.0f;
    with_imatrix(c, "ties+imatrix", 0);

    c = add_case("cols96", 3, 96);  // 32-block types only
    fill_gauss(c, 0.03f);
    with_imatrix(c, "cols96+imatrix", 3);

    c = add_case("cols704", 2, 704);  // llama-pd-11m's down_proj width
    fill_gauss(c, 0.02f);
    with_imatrix(c, "cols704+imatrix", 0);
}

// wanted reports whether case c is encoded as type t: when its rows fit t's blocks, and for the
// float types only in the cases marked floats (their encoding is a plain conversion).
static int wanted(const struct fcase * c, enum ggml_type t) {
    if (c->cols % ggml_blck_size(t) != 0) return 0;
    return ggml_blck_size(t) > 1 || c->floats;
}

// to_float is ggml's decoder of type t (F32 has none in type_traits: its bytes are the values).
static void to_float(enum ggml_type t, const void * q, float * y, size_t n) {
    if (t == GGML_TYPE_F32) { memcpy(y, q, n * sizeof(float)); return; }
    ggml_get_type_traits(t)->to_float(q, y, n);
}

int main(void) {
    build_cases();
    put_bytes("GGMLFIX1", 8);

    put_u32(ncases);
    for (int ci = 0; ci < ncases; ci++) {
        const struct fcase * c = &cases[ci];
        size_t n = (size_t)c->rows * c->cols;
        put_u32(strlen(c->name));
        put_bytes(c->name, strlen(c->name));
        put_u32(c->rows);
        put_u32(c->cols);
        put_u32((uint32_t)c->same_as);  // 0xFFFFFFFF: the values follow
        if (c->same_as < 0) put_bytes(c->x, n * sizeof(float));
        put_u32(c->imatrix != NULL);
        if (c->imatrix) put_bytes(c->imatrix, c->cols * sizeof(float));
        int nout = 0;
        for (int ti = 0; ti < NTYPES; ti++) nout += wanted(c, types[ti]);
        put_u32(nout);
        for (int ti = 0; ti < NTYPES; ti++) {
            enum ggml_type t = types[ti];
            if (!wanted(c, t)) continue;
            size_t nb = ggml_row_size(t, c->cols) * c->rows;
            uint8_t * q = malloc(nb);
            size_t wrote = ggml_quantize_chunk(t, c->x, q, 0, c->rows, c->cols, c->imatrix);
            if (wrote != nb) { fprintf(stderr, "%s %s: wrote %zu, want %zu\n", c->name, ggml_type_name(t), wrote, nb); return 1; }
            float * y = malloc(n * sizeof(float));
            to_float(t, q, y, n);
            uint64_t h = fnv1a(y, n * sizeof(float));
            put_u32(t);
            put_u32(nb);
            put_bytes(q, nb);
            put_bytes(&h, 8);
            free(q);
            free(y);
        }
    }

    // Decoding arbitrary blocks: random bytes (float16 scales of every bit pattern included:
    // Inf, NaN, subnormals).
    put_u32(NTYPES);
    for (int ti = 0; ti < NTYPES; ti++) {
        enum ggml_type t = types[ti];
        int nblocks = ggml_blck_size(t) == 1 ? 256 : ggml_blck_size(t) == 32 ? 16 : 4;
        size_t nb = ggml_type_size(t) * nblocks, n = (size_t)ggml_blck_size(t) * nblocks;
        uint8_t * q = malloc(nb);
        for (size_t i = 0; i < nb; i++) q[i] = (uint8_t)next_u64();
        float * y = malloc(n * sizeof(float));
        to_float(t, q, y, n);
        put_u32(t);
        put_u32(nb);
        put_bytes(q, nb);
        put_bytes(y, n * sizeof(float));
        free(q);
        free(y);
    }
    return 0;
}
