// cli/cmd_rm_brme: the flags of `rlhf rm --objective brme` (train/rm_brme.h);
// the number of heads is --ensemble_size.
#include "cli/rm_flags.h"

int rm_brme_flag_defs(flag_def *defs, rm_brme_options *o) {
    int n = 0;
    defs[n++] = (flag_def){"brme_samples", FLAG_INT, &o->samples,
                           "brme: M reparameterised reward samples r = mu + sigma*eps per pair and "
                           "head; the loss is -log of the mean over them of sigmoid(r_chosen - "
                           "r_rejected) (M = 1 would drive every sigma to 0)", 1, 256};
    defs[n++] = (flag_def){"brme_sigma_prior", FLAG_FLOAT, &o->sigma_prior,
                           "brme: weight of the prior KL(N(mu, sigma^2) || N(mu, 1)) per response, "
                           "pulling each head's sigma toward 1 where the pairs say little", 0, 1e6};
    return n;
}
