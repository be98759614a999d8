// cli/cmd_rm_vpl: the flags of `rlhf rm --objective vpl` (train/rm_vpl.h).
#include "cli/rm_flags.h"

int rm_vpl_flag_defs(flag_def *defs, rm_vpl_options *o) {
    int n = 0;
    defs[n++] = (flag_def){"vpl_context_pairs", FLAG_INT, &o->context_pairs,
                           "vpl: K labelled pairs of a user that the encoder reads to infer the "
                           "user's latent (eval: each held-out user's first K pairs)", 1, 1024};
    defs[n++] = (flag_def){"vpl_targets", FLAG_INT, &o->targets,
                           "vpl: pairs of each user scored per step besides its context", 1, 1024};
    defs[n++] = (flag_def){"vpl_hidden", FLAG_INT, &o->hidden,
                           "vpl: width of the pair-encoder and reward MLPs", 1, 65536};
    defs[n++] = (flag_def){"vpl_latent", FLAG_INT, &o->latent,
                           "vpl: width of the user latent z", 1, 65536};
    defs[n++] = (flag_def){"vpl_kl_beta", FLAG_FLOAT, &o->kl_beta,
                           "vpl: weight of KL(q(z|context) || N(0, I)) in the loss", 0, 1e6};
    defs[n++] = (flag_def){"vpl_kl_period", FLAG_INT, &o->kl_period,
                           "vpl: steps of one cyclical cosine annealing cycle of the KL weight "
                           "(0: the full weight throughout)", 0, 1 << 30};
    defs[n++] = (flag_def){"vpl_kl_floor", FLAG_FLOAT, &o->kl_floor,
                           "vpl: each annealing cycle starts at this share of the KL weight", 0, 1};
    defs[n++] = (flag_def){"vpl_pooling", FLAG_STR, &o->pooling,
                           "vpl: the embedding e(x,y): last (the trunk's final hidden state at the "
                           "last real token) or mean (its mean over the answer's tokens)"};
    return n;
}
