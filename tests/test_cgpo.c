// CGPO: the losses and weights of algo/cgpo (finite-difference gradients, hand
// cases) and the mixture of judges of reward/constraint (parsing, errors naming
// the item, verdicts). With --dump FILE it writes random inputs and the C
// outputs as JSON for tests/cgpo_test.py, which checks them against
// tests/cgpo_ref.py (an independent numpy implementation).
#include <stdint.h>
#include <string.h>

#include "algo/cgpo.h"
#include "base/base.h"
#include "reward/constraint.h"
#include "test.h"

static double urand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0;
}

// ------------------------------------------------------------------ the math

static int test_calibrated(void) {
    CHECK_CLOSE(cgpo_calibrated(1.0, 1.0), 0.5, 1e-12, 0);
    CHECK_CLOSE(cgpo_calibrated(2.0, 0.0), 1 / (1 + exp(-2.0)), 1e-12, 0);
    CHECK(cgpo_calibrated(-800, 0) >= 0 && cgpo_calibrated(800, 0) <= 1);
    return 0;
}

// CRPG: only passing, kept rows weigh; the loss is linear in S with slope grad
static int test_crpg(void) {
    float sc[4] = {1, 0, 2, 3}, ref[4] = {1, 1, 1, 1}, S[4] = {-2, -3, -1, -4}, w[4], g[4];
    uint8_t pass[4] = {1, 1, 0, 1}, keep[4] = {1, 1, 1, 0};
    double L = cgpo_crpg(4, 1, sc, ref, pass, keep, S, w, g);
    CHECK_CLOSE(w[0], 0.5, 1e-7, 0);
    CHECK_CLOSE(w[1], 1 / (1 + exp(1.0)), 1e-7, 0);
    CHECK(w[2] == 0 && w[3] == 0 && g[2] == 0 && g[3] == 0);
    CHECK_CLOSE(L, -(w[0] * -2 + w[1] * -3) / 4, 1e-7, 0);
    CHECK_CLOSE(g[0], -w[0] / 4, 1e-7, 0);
    // groups of 2 with the leave-one-out baseline: a passing row against a violating one
    float sc2[2] = {0, 0}, ref2[2] = {0, 0}, S2[2] = {-1, -1};
    uint8_t pass2[2] = {1, 0};
    cgpo_crpg(2, 2, sc2, ref2, pass2, NULL, S2, w, g);
    CHECK_CLOSE(g[0], -0.5 / 2, 1e-7, 0);
    CHECK_CLOSE(g[1], 0.5 / 2, 1e-7, 0);  // the violating row is pushed down
    return 0;
}

static int test_codpo_pairs(void) {
    // group 0: passing rows 0 (0.5), 1 (0.9), 3 (0.9); violating 2 (0.1) -> (1, 2)
    // group 1: no violating; fallback pairs best 4 (0.8) against lowest passing 7 (0.2)
    // group 2: no passing row -> none; group 3 kept out -> none
    float sc[16] = {0.5f, 0.9f, 0.1f, 0.9f, 0.8f, 0.3f, 0.5f, 0.2f,
                    1, 2, 3, 4, 0.9f, 0.1f, 0.5f, 0.2f};
    uint8_t pass[16] = {1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0};
    uint8_t keep[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0};
    int c[4], r[4];
    int P = cgpo_codpo_pairs(4, 4, sc, pass, keep, 1, c, r);
    CHECKF(P == 2 && c[0] == 1 && r[0] == 2 && c[1] == 4 && r[1] == 7, "P %d c %d %d r %d %d", P,
           c[0], c[1], r[0], r[1]);
    P = cgpo_codpo_pairs(4, 4, sc, pass, keep, 0, c, r);
    CHECK(P == 1 && c[0] == 1 && r[0] == 2);
    // violating rows: the LOWEST reward is rejected even when a violator scores higher
    float s2[4] = {0.2f, 5.0f, 1.0f, 0.0f};
    uint8_t p2[4] = {1, 0, 1, 0};
    P = cgpo_codpo_pairs(1, 4, s2, p2, NULL, 1, c, r);
    CHECK(P == 1 && c[0] == 2 && r[0] == 3);
    return 0;
}

// d(loss)/d(S) of CODPO and CRRAFT by central differences in double steps
static int test_gradients_fd(void) {
    uint64_t seed = 7;
    enum { P = 5 };
    float pc[P], pr[P], rc[P], rr[P], gc[P], gr[P], g2[P], g3[P];
    int lc[P];
    for (int k = 0; k < P; k++) {
        pc[k] = (float)(-5 * urand(&seed)), pr[k] = (float)(-5 * urand(&seed));
        rc[k] = (float)(-5 * urand(&seed)), rr[k] = (float)(-5 * urand(&seed));
        lc[k] = 1 + (int)(4 * urand(&seed));
    }
    cgpo_codpo_loss(P, pc, pr, rc, rr, lc, 0.7f, 0.3f, gc, gr, NULL);
    const float h = 1e-2f;
    for (int k = 0; k < P; k++) {
        float keep_c = pc[k], keep_r = pr[k];
        pc[k] = keep_c + h;
        double up = cgpo_codpo_loss(P, pc, pr, rc, rr, lc, 0.7f, 0.3f, g2, g3, NULL);
        pc[k] = keep_c - h;
        double dn = cgpo_codpo_loss(P, pc, pr, rc, rr, lc, 0.7f, 0.3f, g2, g3, NULL);
        pc[k] = keep_c;
        CHECK_CLOSE(gc[k], (up - dn) / (2 * h), 1e-4, 1e-3);
        pr[k] = keep_r + h;
        up = cgpo_codpo_loss(P, pc, pr, rc, rr, lc, 0.7f, 0.3f, g2, g3, NULL);
        pr[k] = keep_r - h;
        dn = cgpo_codpo_loss(P, pc, pr, rc, rr, lc, 0.7f, 0.3f, g2, g3, NULL);
        pr[k] = keep_r;
        CHECK_CLOSE(gr[k], (up - dn) / (2 * h), 1e-4, 1e-3);
    }
    enum { G = 3, N = 4, B = G * N };
    float sc[B], ref[B], S[B], w[B], g[B], w2[B], gg[B];
    uint8_t pass[B];
    int len[B];
    for (int i = 0; i < B; i++) {
        sc[i] = (float)urand(&seed), ref[i] = 0.5f, S[i] = (float)(-3 * urand(&seed));
        pass[i] = urand(&seed) < 0.6, len[i] = 1 + i % 3;
    }
    cgpo_crraft(G, N, sc, ref, pass, NULL, S, len, w, g);
    for (int i = 0; i < B; i++) {
        float k0 = S[i];
        S[i] = k0 + h;
        double up = cgpo_crraft(G, N, sc, ref, pass, NULL, S, len, w2, gg);
        S[i] = k0 - h;
        double dn = cgpo_crraft(G, N, sc, ref, pass, NULL, S, len, w2, gg);
        S[i] = k0;
        CHECK_CLOSE(g[i], (up - dn) / (2 * h), 1e-5, 1e-3);
    }
    cgpo_crpg(B, N, sc, ref, pass, NULL, S, w, g);
    for (int i = 0; i < B; i++) {
        float k0 = S[i];
        S[i] = k0 + h;
        double up = cgpo_crpg(B, N, sc, ref, pass, NULL, S, w2, gg);
        S[i] = k0 - h;
        double dn = cgpo_crpg(B, N, sc, ref, pass, NULL, S, w2, gg);
        S[i] = k0;
        CHECK_CLOSE(g[i], (up - dn) / (2 * h), 1e-5, 1e-3);
    }
    return 0;
}

// ------------------------------------------------------------------ the judges

static int bad_spec(const char *spec, const char *needle) {
    constraint_set *cs;
    rlhf_err err = {0};
    int rc = constraint_parse(&cs, spec, &err);
    if (rc == 0) {
        constraint_free(cs);
        printf("  spec \"%s\" parsed\n", spec);
        return 0;
    }
    if (!strstr(err.msg, needle)) {
        printf("  spec \"%s\": message \"%s\" lacks \"%s\"\n", spec, err.msg, needle);
        return 0;
    }
    return 1;
}

static int test_judges_parse(void) {
    constraint_set *cs;
    rlhf_err err = {0};
    int rc = constraint_parse(&cs, "regex:^[0-9]{1,3}$,not_regex:x,y,format:int,max_chars:6,"
                                   "max_tokens:3,verifier:arith:shaped>=0.3,format:int",
                              &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return 0;
    CHECK(constraint_count(cs) == 7);
    CHECK(!strcmp(constraint_name(cs, 0), "regex"));
    CHECK(!strcmp(constraint_name(cs, 1), "not_regex"));  // its pattern is "x,y"
    CHECK(!strcmp(constraint_name(cs, 3), "max_chars:6"));
    CHECK(!strcmp(constraint_name(cs, 5), "verifier:arith:shaped"));
    CHECK(!strcmp(constraint_name(cs, 6), "format:int.2"));
    constraint_free(cs);
    CHECK(bad_spec("", "no judges"));
    CHECK(bad_spec("format:int,regex:([a-z", "regex:([a-z"));
    CHECK(bad_spec("max_chars:abc", "max_chars:abc"));
    CHECK(bad_spec("format:int,oracle:x", "oracle:x"));
    CHECK(bad_spec("format:xml", "format:xml"));
    CHECK(bad_spec("verifier:nosuch>0", "nosuch"));
    CHECK(bad_spec("max_tokens:-1", "judge 1"));
    return 0;
}

static int test_judges_verdicts(void) {
    constraint_set *cs;
    rlhf_err err = {0};
    const char *spec = "format:int,not_regex:[a-z],max_chars:3,max_tokens:2,verifier:arith,"
                       "verifier:arith:shaped>=0.3,command:while read l; do case \"$l\" in "
                       "*9*) echo 1;; *) echo 0;; esac; done";
    int rc = constraint_parse(&cs, spec, &err);
    if (rc == 0) rc = constraint_open(cs, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return 0;
    enum { N = 5, J = 7 };
    const char *prompts[N] = {"2+3=", "2+3=", "40+50=", "2+3=", "1+1="};
    const char *comps[N] = {"5", "5 ok", "90", "0522", " 3"};
    int toks[N] = {2, 5, 3, 5, 2};
    uint8_t v[N * J];
    rc = constraint_judge(cs, prompts, comps, toks, N, v, &err);
    CHECKF(rc == 0, "%s", err.msg);
    // columns: format:int, not_regex:[a-z], max_chars:3, max_tokens:2, verifier:arith (>0),
    // verifier:arith:shaped>=0.3 (" 3" for 2: off by one -> 0.38 passes), command (a 9 present)
    const uint8_t want[N][J] = {{0, 0, 0, 0, 0, 0, 1},
                                {1, 1, 1, 1, 1, 1, 1},
                                {0, 0, 0, 1, 0, 0, 0},
                                {1, 0, 1, 1, 1, 1, 1},
                                {0, 0, 0, 0, 1, 0, 1}};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < J; j++)
            CHECKF(v[i * J + j] == want[i][j], "sample %d (\"%s\") judge %s: %d", i, comps[i],
                   constraint_name(cs, j), v[i * J + j]);
    constraint_free(cs);
    return 0;
}

// ------------------------------------------------------------------ the dump

static void put_f(FILE *f, const char *key, const float *x, int n) {
    fprintf(f, "\"%s\": [", key);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.9g", i ? ", " : "", x[i]);
    fprintf(f, "], ");
}
static void put_i(FILE *f, const char *key, const int *x, int n) {
    fprintf(f, "\"%s\": [", key);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", x[i]);
    fprintf(f, "], ");
}
static void put_u8(FILE *f, const char *key, const uint8_t *x, int n) {
    int *y = xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) y[i] = x[i];
    put_i(f, key, y, n);
    free(y);
}

// random cases: G groups of N rows; every output of algo/cgpo
static int dump(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    uint64_t seed = 11;
    fprintf(f, "[");
    for (int c = 0; c < 20; c++) {
        int G = 1 + c % 4, N = 2 + c % 5, B = G * N;
        float *sc = xmalloc(B * sizeof(float) * 8), *ref = sc + B, *S = ref + B, *R = S + B;
        float *w = R + B, *g = w + B, *w2 = g + B, *g2 = w2 + B;
        uint8_t *pass = xmalloc(B * 2), *keep = pass + B;
        int *len = xmalloc(B * sizeof(int) * 3), *ch = len + B, *rj = ch + B;
        for (int i = 0; i < B; i++) {
            sc[i] = (float)(c % 3 == 0 ? (int)(3 * urand(&seed)) : 4 * urand(&seed) - 2);  // ties
            ref[i] = (float)(2 * urand(&seed) - 1), S[i] = (float)(-6 * urand(&seed));
            R[i] = (float)(-6 * urand(&seed));
            pass[i] = urand(&seed) < 0.6, len[i] = 1 + (int)(6 * urand(&seed));
        }
        for (int gi = 0; gi < G; gi++)
            for (int j = 0; j < N; j++) keep[gi * N + j] = c % 2 ? gi != 1 : 1;
        float beta = (float)(0.05 + urand(&seed)), lam = (float)urand(&seed);
        int fb = c % 5 != 0;
        fprintf(f, "%s{\"G\": %d, \"N\": %d, \"beta\": %.9g, \"lambda\": %.9g, \"fallback\": %d, ",
                c ? ",\n" : "", G, N, beta, lam, fb);
        put_f(f, "scores", sc, B), put_f(f, "ref_scores", ref, B), put_f(f, "S", S, B);
        put_f(f, "R", R, B), put_u8(f, "pass", pass, B), put_u8(f, "keep", keep, B);
        put_i(f, "len", len, B);
        int nb = c % 3 == 1 ? 1 : N;  // without and with the leave-one-out baseline
        fprintf(f, "\"crpg_n\": %d, ", nb);
        double L = cgpo_crpg(B, nb, sc, ref, pass, keep, S, w, g);
        put_f(f, "crpg_w", w, B), put_f(f, "crpg_grad", g, B);
        fprintf(f, "\"crpg_loss\": %.9g, ", L);
        L = cgpo_crraft(G, N, sc, ref, pass, keep, S, len, w2, g2);
        put_f(f, "crraft_w", w2, B), put_f(f, "crraft_grad", g2, B);
        fprintf(f, "\"crraft_loss\": %.9g, ", L);
        int P = cgpo_codpo_pairs(G, N, sc, pass, keep, fb, ch, rj);
        put_i(f, "chosen", ch, P), put_i(f, "rejected", rj, P);
        float pc[64], pr[64], rc[64], rr[64], gc[64], gr[64];
        int lc[64];
        for (int k = 0; k < P; k++)
            pc[k] = S[ch[k]], pr[k] = S[rj[k]], rc[k] = R[ch[k]], rr[k] = R[rj[k]],
            lc[k] = len[ch[k]];
        double acc;
        L = cgpo_codpo_loss(P, pc, pr, rc, rr, lc, beta, lam, gc, gr, &acc);
        put_f(f, "codpo_gc", gc, P), put_f(f, "codpo_gr", gr, P);
        fprintf(f, "\"codpo_acc\": %.9g, \"codpo_loss\": %.9g}", acc, L);
        free(sc), free(pass), free(len);
    }
    fprintf(f, "]\n");
    return fclose(f) != 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--dump")) return dump(argv[2]);
    RUN(test_calibrated);
    RUN(test_crpg);
    RUN(test_codpo_pairs);
    RUN(test_gradients_fd);
    RUN(test_judges_parse);
    RUN(test_judges_verdicts);
    TEST_EXIT();
}
