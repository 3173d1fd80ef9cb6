/* Fused compositing of a `WindowPlan` on the CPU (smile_video.motion.cpu_kernel compiles and loads this file).
 *
 * Per window: for each row, the span of pixels whose texel coordinates fall inside the sprite's non-transparent
 * bounds is solved in closed form (padded to a multiple of 16 pixels so the compiler's vector loop has no scalar
 * tail), then every pixel of the span is sampled (bilinear, straight-alpha RGBA texels read as one uint32 each,
 * out-of-cell texels transparent), blended into the three colour planes and its alpha written. Semantics are
 * those of the torch backend (docs/motion.md): sa = sum w a (0..255), P = sum w a c (0..65025); uint8:
 * new = min(255, trunc(old (1 - sa/255) + P/255 + 0.5)); float: new = old (1 - sa/255) + P/65025; alpha byte
 * round(sa), at least 1 where sa > 0. A pixel with sa == 0 keeps its exact value.
 */
#include <math.h>
#include <stdint.h>

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

/* Row span of window pixels that can be covered, padded to a multiple of 16 inside [0, w); 0 if none. */
static inline int row_span(float ur, float vr, float ux, float vx, const float *bnd, int w, int *j0, int *j1) {
    float ja = 0.f, jb = (float)w;
    span(ur, ux, bnd[0], bnd[1], &ja, &jb);
    span(vr, vx, bnd[2], bnd[3], &ja, &jb);
    if (jb <= ja) return 0;
    int a = (int)floorf(ja) - 1, b = (int)ceilf(jb) + 1;
    a = a < 0 ? 0 : a;
    b = b > w ? w : b;
    int n = ((b - a + 15) / 16) * 16;
    if (n > w) n = w;
    if (a + n > w) a = w - n;
    *j0 = a;
    *j1 = a + n;
    return 1;
}

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
 * bounds: (M, 4); fw: (B T, K) window index or -1; per-window arrays of the plan (int64 / float32). */
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
            const float *bnd = bounds + 4 * sp_[e];
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
