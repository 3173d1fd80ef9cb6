/* Fused compositing of a `WindowPlan` on the CPU (smile_video.motion.cpu_kernel compiles and loads this file).
 *
 * Per window: for each row, the span of pixels whose texel coordinates fall inside the sprite's octagonal
 * non-transparent bounds is solved in closed form (padded to the vector width), then every pixel of the span is
 * sampled (bilinear, straight-alpha RGBA texels read as one uint32 each, out-of-cell texels transparent),
 * blended into the three colour planes and its alpha written: 16 pixels at a time with AVX-512, 8 with AVX2,
 * else a plain loop. Semantics are those of the torch backend (docs/motion.md): sa = sum w a (0..255),
 * P = sum w a c (0..65025); uint8: new = min(255, trunc(old (1 - sa/255) + P/255 + 0.5)); float:
 * new = old (1 - sa/255) + P/65025; alpha byte round(sa), at least 1 where sa > 0. A pixel with sa == 0 keeps
 * its exact value.
 */
#include <math.h>
#include <stdint.h>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__)
#include <immintrin.h>
#define PAD 16 /* the AVX-512 loop takes 16 pixels at a time (then AVX2 8, then scalar) */
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PAD 8 /* the AVX2 loop takes 8 pixels at a time */
#else
#define PAD 32 /* lets the compiler's vector loop run without a long scalar tail */
#endif

static inline void span(float r, float d, float lo, float hi, float *j0, float *j1) {
    /* intersect [j0, j1) with {j : lo < r + d j < hi} */
    if (fabsf(d) < 1e-9f) {
        if (!(lo < r && r < hi)) { *j0 = 0.f; *j1 = 0.f; }
        return;
    }
    float a = (lo - r) / d, b = (hi - r) / d;
    if (a > b) { float t = a; a = b; b = t; }
    if (a > *j0) *j0 = a;
    if (b < *j1) *j1 = b;
}

static inline int clampi(int x, int hi) { return x < 0 ? 0 : (x > hi ? hi : x); }

#define SAMPLE                                                                                                   \
    float fu = ur + ux * (float)j, fv = vr + vx * (float)j;                                                      \
    float flu = floorf(fu), flv = floorf(fv);                                                                    \
    float du = fu - flu, dv = fv - flv;                                                                          \
    int iu = (int)flu, iv = (int)flv;                                                                            \
    float wu0 = (iu >= 0 && iu < A) ? 1.f - du : 0.f, wu1 = (iu + 1 >= 0 && iu + 1 < A) ? du : 0.f;             \
    float wv0 = (iv >= 0 && iv < A) ? 1.f - dv : 0.f, wv1 = (iv + 1 >= 0 && iv + 1 < A) ? dv : 0.f;             \
    int cu0 = clampi(iu, A - 1), cu1 = clampi(iu + 1, A - 1), cv0 = clampi(iv, A - 1), cv1 = clampi(iv + 1, A - 1); \
    uint32_t p00 = cell[cv0 * A + cu0], p01 = cell[cv0 * A + cu1];                                              \
    uint32_t p10 = cell[cv1 * A + cu0], p11 = cell[cv1 * A + cu1];                                              \
    float w00 = wu0 * wv0 * (float)(p00 >> 24), w01 = wu1 * wv0 * (float)(p01 >> 24);                            \
    float w10 = wu0 * wv1 * (float)(p10 >> 24), w11 = wu1 * wv1 * (float)(p11 >> 24);                            \
    float sa = w00 + w01 + w10 + w11;                                                                            \
    float pr_ = w00 * (float)(p00 & 255u) + w01 * (float)(p01 & 255u) + w10 * (float)(p10 & 255u)                \
              + w11 * (float)(p11 & 255u);                                                                       \
    float pg_ = w00 * (float)((p00 >> 8) & 255u) + w01 * (float)((p01 >> 8) & 255u)                              \
              + w10 * (float)((p10 >> 8) & 255u) + w11 * (float)((p11 >> 8) & 255u);                             \
    float pb_ = w00 * (float)((p00 >> 16) & 255u) + w01 * (float)((p01 >> 16) & 255u)                            \
              + w10 * (float)((p10 >> 16) & 255u) + w11 * (float)((p11 >> 16) & 255u);                           \
    float keep = 1.f - sa * (1.f / 255.f);                                                                       \
    int q = (int)(sa + 0.5f);                                                                                    \
    q = q > 255 ? 255 : q;                                                                                       \
    q += (q == 0) & (sa > 0.f);                                                                                  \
    ra[j] = (uint8_t)q;

/* Row span of window pixels that can be covered, padded to a multiple of PAD inside [0, w); 0 if none. */
static inline int row_span(float ur, float vr, float ux, float vx, const float *bnd, int w, int *j0, int *j1) {
    float ja = 0.f, jb = (float)w;
    span(ur, ux, bnd[0], bnd[1], &ja, &jb); /* the cell's octagon: u, v, u + v, u - v */
    span(vr, vx, bnd[2], bnd[3], &ja, &jb);
    span(ur + vr, ux + vx, bnd[4], bnd[5], &ja, &jb);
    span(ur - vr, ux - vx, bnd[6], bnd[7], &ja, &jb);
    if (jb <= ja) return 0;
    int a = (int)floorf(ja) - 1, b = (int)ceilf(jb) + 1;
    a = a < 0 ? 0 : a;
    b = b > w ? w : b;
    int n = ((b - a + PAD - 1) / PAD) * PAD;
    if (n > w) n = w;
    if (a + n > w) a = w - n;
    *j0 = a;
    *j1 = a + n;
    return 1;
}

#if defined(__AVX2__) && defined(__FMA__)
/* 8 int32 in [0, 255] -> 8 bytes at dst */
static inline void store8(uint8_t *dst, __m256i x) {
    __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    _mm_storel_epi64((__m128i *)dst, _mm_packus_epi16(w16, w16));
}

static inline __m256 load8(const uint8_t *src) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)src)));
}

static inline __m256 channel(__m256i p, int shift) {
    if (shift == 24) return _mm256_cvtepi32_ps(_mm256_srli_epi32(p, 24));
    const int b = shift / 8;
    const __m256i sel = _mm256_setr_epi8(b, -1, -1, -1, 4 + b, -1, -1, -1, 8 + b, -1, -1, -1, 12 + b, -1, -1, -1,
                                         b, -1, -1, -1, 4 + b, -1, -1, -1, 8 + b, -1, -1, -1, 12 + b, -1, -1, -1);
    return _mm256_cvtepi32_ps(_mm256_shuffle_epi8(p, sel));
}

/* Pixels j .. j + 7 of one row (uint8 planes): the SAMPLE + blend of the scalar loop, 8 lanes at a time. */
static inline void block8_u8(const uint32_t *cell, int A, int j, float ur, float vr, float ux, float vx,
                             uint8_t *rr, uint8_t *rg, uint8_t *rb, uint8_t *ra) {
    const __m256 jf = _mm256_add_ps(_mm256_set1_ps((float)j), _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 fu = _mm256_fmadd_ps(_mm256_set1_ps(ux), jf, _mm256_set1_ps(ur));
    const __m256 fv = _mm256_fmadd_ps(_mm256_set1_ps(vx), jf, _mm256_set1_ps(vr));
    const __m256 flu = _mm256_floor_ps(fu), flv = _mm256_floor_ps(fv);
    const __m256 du = _mm256_sub_ps(fu, flu), dv = _mm256_sub_ps(fv, flv);
    const __m256 one = _mm256_set1_ps(1.f);
    const __m256i iu = _mm256_cvttps_epi32(flu), iv = _mm256_cvttps_epi32(flv);
    const __m256i vA = _mm256_set1_epi32(A), m1 = _mm256_set1_epi32(-1), z = _mm256_setzero_si256();
    const __m256i top = _mm256_set1_epi32(A - 1), inc = _mm256_set1_epi32(1);
    const __m256i iu1 = _mm256_add_epi32(iu, inc), iv1 = _mm256_add_epi32(iv, inc);
    /* in-cell masks: -1 <  i < A */
#define INSIDE(x) _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(x, m1), _mm256_cmpgt_epi32(vA, x)))
    const __m256 wu0 = _mm256_and_ps(_mm256_sub_ps(one, du), INSIDE(iu));
    const __m256 wu1 = _mm256_and_ps(du, INSIDE(iu1));
    const __m256 wv0 = _mm256_and_ps(_mm256_sub_ps(one, dv), INSIDE(iv));
    const __m256 wv1 = _mm256_and_ps(dv, INSIDE(iv1));
#undef INSIDE
#define CLAMP(x) _mm256_min_epi32(_mm256_max_epi32(x, z), top)
    const __m256i cu0 = CLAMP(iu), cu1 = CLAMP(iu1);
    const __m256i r0 = _mm256_mullo_epi32(CLAMP(iv), vA), r1 = _mm256_mullo_epi32(CLAMP(iv1), vA);
#undef CLAMP
    const int *base = (const int *)cell;
    const __m256i p00 = _mm256_i32gather_epi32(base, _mm256_add_epi32(r0, cu0), 4);
    const __m256i p01 = _mm256_i32gather_epi32(base, _mm256_add_epi32(r0, cu1), 4);
    const __m256i p10 = _mm256_i32gather_epi32(base, _mm256_add_epi32(r1, cu0), 4);
    const __m256i p11 = _mm256_i32gather_epi32(base, _mm256_add_epi32(r1, cu1), 4);
    const __m256 w00 = _mm256_mul_ps(_mm256_mul_ps(wu0, wv0), channel(p00, 24));
    const __m256 w01 = _mm256_mul_ps(_mm256_mul_ps(wu1, wv0), channel(p01, 24));
    const __m256 w10 = _mm256_mul_ps(_mm256_mul_ps(wu0, wv1), channel(p10, 24));
    const __m256 w11 = _mm256_mul_ps(_mm256_mul_ps(wu1, wv1), channel(p11, 24));
    const __m256 sa = _mm256_add_ps(_mm256_add_ps(w00, w01), _mm256_add_ps(w10, w11));
    if (_mm256_testz_ps(_mm256_cmp_ps(sa, _mm256_setzero_ps(), _CMP_GT_OQ),
                        _mm256_cmp_ps(sa, _mm256_setzero_ps(), _CMP_GT_OQ)))
        return; /* all 8 transparent: the pixels keep their values and the alpha buffer is already 0 */
    const __m256 keep = _mm256_fnmadd_ps(sa, _mm256_set1_ps(1.f / 255.f), one);
    const __m256 half = _mm256_set1_ps(0.5f), cap = _mm256_set1_ps(255.f), inv = _mm256_set1_ps(1.f / 255.f);
    __m256i q = _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_add_ps(sa, half)), _mm256_set1_epi32(255));
    const __m256i zero_q = _mm256_cmpeq_epi32(q, z);
    const __m256i pos = _mm256_castps_si256(_mm256_cmp_ps(sa, _mm256_setzero_ps(), _CMP_GT_OQ));
    q = _mm256_sub_epi32(q, _mm256_and_si256(zero_q, pos)); /* q += 1 where q == 0 and sa > 0 */
    store8(ra + j, q);
    uint8_t *planes[3] = {rr, rg, rb};
    for (int c = 0; c < 3; c++) {
        const int sh = 8 * c;
        __m256 acc = _mm256_mul_ps(w00, channel(p00, sh));
        acc = _mm256_fmadd_ps(w01, channel(p01, sh), acc);
        acc = _mm256_fmadd_ps(w10, channel(p10, sh), acc);
        acc = _mm256_fmadd_ps(w11, channel(p11, sh), acc);
        __m256 nv = _mm256_fmadd_ps(load8(planes[c] + j), keep, _mm256_fmadd_ps(acc, inv, half));
        store8(planes[c] + j, _mm256_cvttps_epi32(_mm256_min_ps(nv, cap)));
    }
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__)
static inline __m512 channel16(__m512i p, int shift) {
    return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(p, shift), _mm512_set1_epi32(255)));
}

static inline __m512 load16(const uint8_t *src) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)src)));
}

static inline void store16(uint8_t *dst, __m512i x) { _mm_storeu_si128((__m128i *)dst, _mm512_cvtusepi32_epi8(x)); }

/* block8_u8 with 16 lanes */
static inline void block16_u8(const uint32_t *cell, int A, int j, float ur, float vr, float ux, float vx,
                              uint8_t *rr, uint8_t *rg, uint8_t *rb, uint8_t *ra) {
    const __m512 jf = _mm512_add_ps(_mm512_set1_ps((float)j),
                                    _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m512 fu = _mm512_fmadd_ps(_mm512_set1_ps(ux), jf, _mm512_set1_ps(ur));
    const __m512 fv = _mm512_fmadd_ps(_mm512_set1_ps(vx), jf, _mm512_set1_ps(vr));
    const __m512 flu = _mm512_roundscale_ps(fu, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512 flv = _mm512_roundscale_ps(fv, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512 du = _mm512_sub_ps(fu, flu), dv = _mm512_sub_ps(fv, flv), one = _mm512_set1_ps(1.f);
    const __m512i iu = _mm512_cvttps_epi32(flu), iv = _mm512_cvttps_epi32(flv);
    const __m512i vA = _mm512_set1_epi32(A), m1 = _mm512_set1_epi32(-1), z = _mm512_setzero_si512();
    const __m512i top = _mm512_set1_epi32(A - 1), inc = _mm512_set1_epi32(1);
    const __m512i iu1 = _mm512_add_epi32(iu, inc), iv1 = _mm512_add_epi32(iv, inc);
#define INSIDE(x) (_mm512_cmpgt_epi32_mask(x, m1) & _mm512_cmpgt_epi32_mask(vA, x))
    const __m512 wu0 = _mm512_maskz_mov_ps(INSIDE(iu), _mm512_sub_ps(one, du));
    const __m512 wu1 = _mm512_maskz_mov_ps(INSIDE(iu1), du);
    const __m512 wv0 = _mm512_maskz_mov_ps(INSIDE(iv), _mm512_sub_ps(one, dv));
    const __m512 wv1 = _mm512_maskz_mov_ps(INSIDE(iv1), dv);
#undef INSIDE
#define CLAMP(x) _mm512_min_epi32(_mm512_max_epi32(x, z), top)
    const __m512i cu0 = CLAMP(iu), cu1 = CLAMP(iu1);
    const __m512i r0 = _mm512_mullo_epi32(CLAMP(iv), vA), r1 = _mm512_mullo_epi32(CLAMP(iv1), vA);
#undef CLAMP
    const __m512i p00 = _mm512_i32gather_epi32(_mm512_add_epi32(r0, cu0), (const void *)cell, 4);
    const __m512i p01 = _mm512_i32gather_epi32(_mm512_add_epi32(r0, cu1), (const void *)cell, 4);
    const __m512i p10 = _mm512_i32gather_epi32(_mm512_add_epi32(r1, cu0), (const void *)cell, 4);
    const __m512i p11 = _mm512_i32gather_epi32(_mm512_add_epi32(r1, cu1), (const void *)cell, 4);
    const __m512 w00 = _mm512_mul_ps(_mm512_mul_ps(wu0, wv0), channel16(p00, 24));
    const __m512 w01 = _mm512_mul_ps(_mm512_mul_ps(wu1, wv0), channel16(p01, 24));
    const __m512 w10 = _mm512_mul_ps(_mm512_mul_ps(wu0, wv1), channel16(p10, 24));
    const __m512 w11 = _mm512_mul_ps(_mm512_mul_ps(wu1, wv1), channel16(p11, 24));
    const __m512 sa = _mm512_add_ps(_mm512_add_ps(w00, w01), _mm512_add_ps(w10, w11));
    const __mmask16 pos = _mm512_cmp_ps_mask(sa, _mm512_setzero_ps(), _CMP_GT_OQ);
    if (!pos) return; /* all 16 transparent: the pixels keep their values and the alpha buffer is already 0 */
    const __m512 keep = _mm512_fnmadd_ps(sa, _mm512_set1_ps(1.f / 255.f), one);
    const __m512 half = _mm512_set1_ps(0.5f), cap = _mm512_set1_ps(255.f), inv = _mm512_set1_ps(1.f / 255.f);
    __m512i q = _mm512_min_epi32(_mm512_cvttps_epi32(_mm512_add_ps(sa, half)), _mm512_set1_epi32(255));
    q = _mm512_mask_add_epi32(q, pos & _mm512_cmpeq_epi32_mask(q, z), q, inc); /* at least 1 where sa > 0 */
    store16(ra + j, q);
    uint8_t *planes[3] = {rr, rg, rb};
    for (int c = 0; c < 3; c++) {
        const int sh = 8 * c;
        __m512 acc = _mm512_mul_ps(w00, channel16(p00, sh));
        acc = _mm512_fmadd_ps(w01, channel16(p01, sh), acc);
        acc = _mm512_fmadd_ps(w10, channel16(p10, sh), acc);
        acc = _mm512_fmadd_ps(w11, channel16(p11, sh), acc);
        __m512 nv = _mm512_fmadd_ps(load16(planes[c] + j), keep, _mm512_fmadd_ps(acc, inv, half));
        store16(planes[c] + j, _mm512_cvttps_epi32(_mm512_min_ps(nv, cap)));
    }
}
#endif

static void window_u8(const uint32_t *restrict cell, int A, const float *bnd, uint8_t *restrict r,
                      uint8_t *restrict g, uint8_t *restrict b, long stride, uint8_t *restrict alpha, int h, int w,
                      float u0, float ux, float uy, float v0, float vx, float vy) {
    for (int i = 0; i < h; i++) {
        float ur = u0 + uy * (float)i, vr = v0 + vy * (float)i;
        int j0, j1;
        if (!row_span(ur, vr, ux, vx, bnd, w, &j0, &j1)) continue;
        ur -= 0.5f;
        vr -= 0.5f;
        uint8_t *rr = r + i * stride, *rg = g + i * stride, *rb = b + i * stride, *ra = alpha + (long)i * w;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__)
        for (; j0 + 16 <= j1; j0 += 16) block16_u8(cell, A, j0, ur, vr, ux, vx, rr, rg, rb, ra);
#endif
#if defined(__AVX2__) && defined(__FMA__)
        for (; j0 + 8 <= j1; j0 += 8) block8_u8(cell, A, j0, ur, vr, ux, vx, rr, rg, rb, ra);
#endif
        for (int j = j0; j < j1; j++) {
            SAMPLE
            float nr = (float)rr[j] * keep + pr_ * (1.f / 255.f) + 0.5f;
            float ng = (float)rg[j] * keep + pg_ * (1.f / 255.f) + 0.5f;
            float nb = (float)rb[j] * keep + pb_ * (1.f / 255.f) + 0.5f;
            rr[j] = (uint8_t)(nr > 255.f ? 255.f : nr);
            rg[j] = (uint8_t)(ng > 255.f ? 255.f : ng);
            rb[j] = (uint8_t)(nb > 255.f ? 255.f : nb);
        }
    }
}

static void window_f32(const uint32_t *restrict cell, int A, const float *bnd, float *restrict r,
                       float *restrict g, float *restrict b, long stride, uint8_t *restrict alpha, int h, int w,
                       float u0, float ux, float uy, float v0, float vx, float vy) {
    for (int i = 0; i < h; i++) {
        float ur = u0 + uy * (float)i, vr = v0 + vy * (float)i;
        int j0, j1;
        if (!row_span(ur, vr, ux, vx, bnd, w, &j0, &j1)) continue;
        ur -= 0.5f;
        vr -= 0.5f;
        float *rr = r + i * stride, *rg = g + i * stride, *rb = b + i * stride;
        uint8_t *ra = alpha + (long)i * w;
        for (int j = j0; j < j1; j++) {
            SAMPLE
            rr[j] = rr[j] * keep + pr_ * (1.f / 65025.f);
            rg[j] = rg[j] * keep + pg_ * (1.f / 65025.f);
            rb[j] = rb[j] * keep + pb_ * (1.f / 65025.f);
        }
    }
}

/* All windows of frames f0 .. f1 - 1 (frame f = b T + t), slot by slot within a frame.
 * video: (B, 3, T, H, W) contiguous, uint8 (is_float = 0) or float32; cells: (M, A, A) uint32 RGBA;
 * bounds: (M, 8) (`cell_bounds`); fw: (B T, K) window index or -1; per-window arrays of the plan (int64 / float32). */
void smile_blend_frames(void *video, int is_float, long T, long H, long W, const uint32_t *cells, int A,
                        const float *bounds, const int64_t *fw, int K, long f0, long f1, const int64_t *b_,
                        const int64_t *t_, const int64_t *x0_, const int64_t *y0_, const int64_t *h_,
                        const int64_t *w_, const int64_t *sp_, const float *u0_, const float *ux_, const float *uy_,
                        const float *v0_, const float *vx_, const float *vy_, const int64_t *off_, uint8_t *alpha) {
    long plane = T * H * W;
    for (long f = f0; f < f1; f++) {
        for (int k = 0; k < K; k++) {
            int64_t e = fw[f * K + k];
            if (e < 0) continue;
            long at = b_[e] * 3 * plane + t_[e] * H * W + y0_[e] * W + x0_[e];
            const uint32_t *cell = cells + sp_[e] * (long)A * A;
            const float *bnd = bounds + 8 * sp_[e];
            if (is_float) {
                float *p = (float *)video + at;
                window_f32(cell, A, bnd, p, p + plane, p + 2 * plane, W, alpha + off_[e], (int)h_[e], (int)w_[e],
                           u0_[e], ux_[e], uy_[e], v0_[e], vx_[e], vy_[e]);
            } else {
                uint8_t *p = (uint8_t *)video + at;
                window_u8(cell, A, bnd, p, p + plane, p + 2 * plane, W, alpha + off_[e], (int)h_[e], (int)w_[e],
                          u0_[e], ux_[e], uy_[e], v0_[e], vx_[e], vy_[e]);
            }
        }
    }
}

/* Per-(frame, patch) sums of the union (max over objects) of alpha windows, for trajectory masking.
 * Frames f0 .. f1 - 1 of (n_frames, H, W); windows sorted by frame: those of frame f are first[f] .. first[f + 1] - 1,
 * window e has origin (y0[e], x0[e]), size (h[e], w[e]) and its alpha at address data[e] (row-major uint8).
 * scratch: H * W bytes for this call; out: (n_frames, H / P, W / P) int32, written for f0 .. f1 - 1. */
void smile_union_patch_sums(long f0, long f1, long H, long W, int P, const int64_t *first, const int64_t *y0_,
                            const int64_t *x0_, const int64_t *h_, const int64_t *w_, const int64_t *data,
                            uint8_t *scratch, int32_t *out) {
    const long hp = H / P, wp = W / P;
    for (long f = f0; f < f1; f++) {
        int32_t *o = out + f * hp * wp;
        for (long i = 0; i < hp * wp; i++) o[i] = 0;
        if (first[f] == first[f + 1]) continue;
        long ya = H, yb = 0, xa = W, xb = 0; /* the frame's region touched by windows */
        for (int64_t e = first[f]; e < first[f + 1]; e++) {
            if (y0_[e] < ya) ya = y0_[e];
            if (x0_[e] < xa) xa = x0_[e];
            if (y0_[e] + h_[e] > yb) yb = y0_[e] + h_[e];
            if (x0_[e] + w_[e] > xb) xb = x0_[e] + w_[e];
        }
        ya = (ya / P) * P; xa = (xa / P) * P; /* whole patches */
        yb = ((yb + P - 1) / P) * P; xb = ((xb + P - 1) / P) * P;
        if (yb > H) yb = H;
        if (xb > W) xb = W;
        for (long y = ya; y < yb; y++)
            for (long x = xa; x < xb; x++) scratch[y * W + x] = 0;
        for (int64_t e = first[f]; e < first[f + 1]; e++) {
            const uint8_t *a = (const uint8_t *)(intptr_t)data[e];
            const long h = h_[e], w = w_[e];
            for (long i = 0; i < h; i++) {
                uint8_t *s = scratch + (y0_[e] + i) * W + x0_[e];
                const uint8_t *r = a + i * w;
                for (long j = 0; j < w; j++) s[j] = r[j] > s[j] ? r[j] : s[j];
            }
        }
        for (long y = ya; y < yb; y++) {
            int32_t *orow = o + (y / P) * wp;
            const uint8_t *s = scratch + y * W;
            for (long x = xa; x < xb; x += P) {
                int32_t acc = 0;
                for (int j = 0; j < P; j++) acc += s[x + j];
                orow[x / P] += acc;
            }
        }
    }
}
