// reward/vpl_rm: a VPL reward model for one user, as a scorer (reward/vpl_rm.h):
// reward/vpl_model with the user's latent fixed.
#include "reward/vpl_rm.h"

#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "reward/vpl_model.h"

struct vpl_rm {
    vpl_model *vm;
    int Z;
    double *mu;    // (Z) the user's latent
};

// z = mu of the first K pairs of the context file
static int load_context(vpl_rm *v, const char *path, rlhf_err *err) {
    int K = vpl_model_context_pairs(v->vm);
    ds_dataset *ds = NULL;
    ds_load_opts lo = {.format = DS_PREFERENCE};
    if (ds_load(&ds, path, &lo, NULL, err)) return -1;
    int rc = 0;
    if (ds->n < K) {
        rc = rlhf_fail(err, "%s: %d pairs, the VPL model reads %d (its context_pairs)", path,
                       ds->n, K);
    } else if (ds->ex[0].conversational) {
        rc = rlhf_fail(err, "%s: vpl: needs standard (string) prompt/chosen/rejected fields", path);
    }
    if (rc == 0) {
        const char **p = xmalloc((size_t)3 * K * sizeof(char *)), **w = p + K, **l = p + 2 * K;
        for (int k = 0; k < K; k++) {
            const ds_example *x = &ds->ex[k];
            p[k] = x->prompt.text ? x->prompt.text : "";
            w[k] = x->chosen.text, l[k] = x->rejected.text;
        }
        v->mu = xmalloc((size_t)v->Z * sizeof(double));
        rc = vpl_model_encode(v->vm, p, w, l, K, v->mu, err);
        free(p);
    }
    ds_free(ds);
    return rc;
}

int vpl_rm_open(vpl_rm **out, const char *arg, const char *tokenizer, rlhf_err *err) {
    *out = NULL;
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || !colon[1])
        return rlhf_fail(err, "vpl:%s: expected vpl:RUN_DIR:CONTEXT.jsonl (a run of rm --objective "
                              "vpl and the user's labelled pairs)", arg);
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(colon - arg), arg);
    vpl_rm *v = xcalloc(1, sizeof *v);
    if (vpl_model_open(&v->vm, dir, tokenizer, err) ||
        (v->Z = vpl_model_latent(v->vm), load_context(v, colon + 1, err))) {
        rlhf_fail_ctx(err, "vpl:%s", arg);
        vpl_rm_close(v);
        return -1;
    }
    *out = v;
    return 0;
}

int vpl_rm_score(vpl_rm *v, const char *const *prompts, const char *const *completions, int n,
                 int batch_size, float *out, rlhf_err *err) {
    if (n <= 0) return 0;
    double *z = xmalloc((size_t)n * v->Z * sizeof(double));
    for (int i = 0; i < n; i++) memcpy(z + (size_t)i * v->Z, v->mu, (size_t)v->Z * sizeof(double));
    int rc = vpl_model_score(v->vm, prompts, completions, z, n, batch_size, out, err);
    free(z);
    return rc;
}

void vpl_rm_close(vpl_rm *v) {
    if (!v) return;
    vpl_model_close(v->vm);
    free(v->mu);
    free(v);
}
