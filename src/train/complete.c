// train/complete: batched text completion.
#include "train/complete.h"

#include <stdlib.h>
#include <string.h>

void complete_default_opts(complete_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch_size = 32;
    o->gen = (rlhf_gen_opts){.max_new_tokens = 64, .temperature = 0.0f, .top_k = 0, .top_p = 1.0f,
                             .eos_id = -1, .pad_id = -1};
    o->parse_special = 1;
    o->add_bos = -1;
}

void complete_stop_ids(rlhf_gen_opts *g, const rlhf_tokenizer *t) {
    if (g->eos_id < 0) g->eos_id = tok_eos(t);
    int stop = tok_stop_id(t);
    if (stop >= 0 && stop != g->eos_id && g->n_stop_ids < 2) g->stop_ids[g->n_stop_ids++] = stop;
}

int complete_texts(rlhf_model *m, const rlhf_tokenizer *t, const char *const *prompts, int n,
                   const complete_opts *o, rlhf_rng *rng, char **out, uint8_t *ended_eos,
                   rlhf_err *err) {
    rlhf_gen_opts g = o->gen;
    complete_stop_ids(&g, t);
    int add_bos = tok_resolve_add_bos(t, o->add_bos);
    if (g.pad_id < 0) g.pad_id = tok_pad(t) >= 0 ? tok_pad(t) : 0;
    int bs = o->batch_size > 0 ? o->batch_size : 32;
    int **ids = xcalloc(bs, sizeof(int *));
    int *lens = xcalloc(bs, sizeof(int));
    int rc = 0;
    for (int s = 0; s < n && rc == 0; s += bs) {
        int nb = n - s < bs ? n - s : bs;
        for (int j = 0; j < nb; j++) {
            int *p = NULL, np = 0;
            const char *txt = prompts[s + j];
            if (tok_encode(t, txt, strlen(txt), &p, &np, o->parse_special, err)) {
                rc = rlhf_fail_ctx(err, "prompt %d", s + j);
                break;
            }
            if (add_bos) tok_prepend_bos(t, &p, &np);
            ids[j] = p;
            lens[j] = np;
        }
        rlhf_gen_out go;
        if (rc == 0 && generate(m, (const int *const *)ids, lens, nb, &g, rng, &go, err) == 0) {
            for (int j = 0; j < nb; j++) {
                int L = go.length[j];
                if (go.ended_eos[j]) L--;  // the EOS is not part of the text
                int prev = lens[j] > 0 ? ids[j][lens[j] - 1] : -1;
                out[s + j] = tok_decode_next(t, prev, go.tokens + (size_t)j * go.n_new, L, 0, NULL);
                if (ended_eos) ended_eos[s + j] = go.ended_eos[j];
            }
            gen_out_free(&go);
        } else {
            rc = -1;
        }
        for (int j = 0; j < nb; j++) {
            free(ids[j]);
            ids[j] = NULL;
        }
    }
    free(ids);
    free(lens);
    return rc;
}
