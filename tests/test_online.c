// The online trainer's tables (train/online_config.c, online_pg.c,
// online_dpo.c): command defaults, declared options, option strings resolved
// once into typed values, declared needs, steps per iteration, online DPO's
// pairing. End-to-end runs are in tests/online_test.py.
#include "test.h"
#include "reward/llm_judge.h"
#include "train/online_judge.h"
#include "train/online_update.h"

static int test_command_defaults(void) {
    online_config c;
    rlhf_err e;
    CHECK(online_default_config(&c, "grpo", &e) == 0);
    CHECK(c.update == &online_update_pg && c.num_generations == 8 && c.pg.beta == 0.04f);
    CHECK(c.pg.kl_in == ONLINE_KL_IN_LOSS && c.pg.kl_estimator == RL_KL_K3);
    CHECK(c.pg.adv_estimator == rl_adv_find("grpo") && c.num_iterations == 1);
    CHECK(online_default_config(&c, "rloo", &e) == 0);
    CHECK(c.pg.kl_in == ONLINE_KL_IN_REWARD && c.pg.adv_estimator == rl_adv_find("rloo"));
    CHECK(online_default_config(&c, "ppo", &e) == 0);
    CHECK(c.pg.value_head == 1 && c.num_iterations == 4 && c.num_generations == 1);
    CHECK(c.pg.adv_estimator == rl_adv_find("gae"));
    CHECK(online_default_config(&c, "online-dpo", &e) == 0);
    CHECK(c.update == &online_update_dpo && c.base.learning_rate == 5e-7f);
    CHECK(c.dpo.pairs == ONLINE_PAIRS_MAX_MIN && c.dpo.losses.n == 1);
    CHECK(!strcmp(c.dpo.losses.def[0]->name, "sigmoid") && c.dpo.pref.beta == 0.1);
    CHECK(online_default_config(&c, "cgpo", &e) == 0 && c.update == &online_update_cgpo);
    CHECK(online_default_config(&c, "brain", &e) == 0 && c.update == &online_update_brain);
    CHECK(online_default_config(&c, "hc-rlhf", &e) == 0 && c.update == &online_update_hc &&
          c.num_generations == 2);
    CHECK(online_default_config(&c, "gkd", &e) == 0 && c.update == &online_update_gkd);
    CHECK(online_default_config(&c, "no-such-method", &e) == -1 && strstr(e.msg, "no-such-method"));
    return 0;
}

// every flag of a command is declared once and points inside online_config
static int test_options_declared_once(void) {
    const online_command *k;
    for (int i = 0; (k = online_command_at(i)); i++) {
        const char *names[128];
        int n = 0;
        for (const online_option *o = online_loop_options; o->name; o++) names[n++] = o->name;
        for (const online_option *o = k->update->options; o && o->name; o++) names[n++] = o->name;
        if (k->update->pref_inputs) {  // the options the preference losses read (cli/pref_flags)
            unsigned used = pref_options_used(k->update->pref_kind, k->update->pref_inputs);
            const pref_option_def *od;
            for (int j = 0; (od = pref_option_at(j)); j++)
                if (od->option & used) names[n++] = od->name;
        }
        for (int a = 0; a < n; a++)
            for (int b = a + 1; b < n; b++)
                CHECKF(strcmp(names[a], names[b]), "%s: %s twice", k->name, names[a]);
        for (const online_option *o = k->update->options; o && o->name; o++)
            CHECK(o->offset < sizeof(online_config));
    }
    const online_update *u;
    int n_updates = 0;
    for (int i = 0; (u = online_update_at(i)); i++) n_updates++;
    CHECK(n_updates == 8);  // pg, dpo, brain, hc, cgpo, gkd, xpo, nash-md
    return 0;
}

static int test_resolve_once(void) {
    online_config c;
    rlhf_err e;
    CHECK(online_default_config(&c, "rloo", &e) == 0);
    c.pg.name.kl_in = "loss";
    c.pg.name.filter = "best_worst";
    c.pg.name.importance_sampling_level = "sequence";
    CHECK(online_config_resolve(&c, &e) == 0);
    CHECK(c.pg.kl_in == ONLINE_KL_IN_LOSS && c.pg.filter == RL_FILTER_BEST_WORST);
    CHECK(c.pg.policy_loss == rl_policy_find("gspo"));
    c.pg.name.kl_in = "both";
    CHECK(online_config_resolve(&c, &e) == -1 && strstr(e.msg, "--kl_in"));
    c.pg.name.kl_in = "reward";
    c.pg.name.adv_estimator = "ppo";
    CHECK(online_config_resolve(&c, &e) == -1 && strstr(e.msg, "--adv_estimator"));
    c.pg.name.adv_estimator = "reinforce_plus_plus";  // verl's name
    CHECK(online_config_resolve(&c, &e) == 0 && c.pg.adv_estimator == rl_adv_find("reinforce_pp"));
    c.name.rm_ensemble = "median";
    CHECK(online_config_resolve(&c, &e) == -1);
    CHECK(online_default_config(&c, "online-dpo", &e) == 0);
    c.dpo.name.pairs = "all";
    c.dpo.name.f_divergence_type = "js_divergence";
    CHECK(online_config_resolve(&c, &e) == 0 && c.dpo.pairs == ONLINE_PAIRS_ALL);
    CHECK(c.dpo.pref.f_divergence_type == PREF_JS_DIVERGENCE);
    c.dpo.name.pairs = "best";
    CHECK(online_config_resolve(&c, &e) == -1 && strstr(e.msg, "--pairs"));
    c.dpo.name.pairs = "max_min";
    c.dpo.name.loss_type = "kto";  // unpaired: not for online DPO
    CHECK(online_config_resolve(&c, &e) == -1 && strstr(e.msg, "online DPO takes paired"));
    return 0;
}

static int test_declared_needs(void) {
    online_config c;
    rlhf_err e;
    CHECK(online_default_config(&c, "grpo", &e) == 0);
    const online_update *u = c.update;
    CHECK(u->needs_of(&c) == (ONLINE_NEED_REFERENCE | ONLINE_NEED_GROUPS));
    c.pg.beta = 0;  // no KL: no reference
    CHECK(u->needs_of(&c) == ONLINE_NEED_GROUPS);
    c.pg.name.adv_estimator = "remax";
    CHECK(online_config_resolve(&c, &e) == 0 && u->needs_of(&c) == ONLINE_NEED_BASELINES);
    CHECK(online_default_config(&c, "ppo", &e) == 0);
    CHECK(u->needs_of(&c) == (ONLINE_NEED_REFERENCE | ONLINE_NEED_VALUES));
    CHECK(u->check(&c, &e) == 0);
    c.pg.value_head = 0;
    CHECK(u->check(&c, &e) == -1 && strstr(e.msg, "--value_head"));
    CHECK(online_default_config(&c, "online-dpo", &e) == 0);
    u = c.update;
    CHECK(u->needs_of(&c) == (ONLINE_NEED_REFERENCE | ONLINE_NEED_GROUPS));
    c.dpo.pref.reference_free = 1;
    c.dpo.ref_update_steps = 2;
    CHECK(u->needs_of(&c) == (ONLINE_NEED_GROUPS | ONLINE_NEED_MOVING_REFERENCE));
    c.num_generations = 1;
    CHECK(u->check(&c, &e) == -1 && strstr(e.msg, "--num_generations"));
    // INPO asks for the previous iterate (from its declared PREF_NEED_PREVIOUS)
    CHECK(online_default_config(&c, "online-dpo", &e) == 0);
    c.dpo.name.loss_type = "inpo";
    CHECK(online_config_resolve(&c, &e) == 0);
    CHECK(u->needs_of(&c) == (ONLINE_NEED_REFERENCE | ONLINE_NEED_GROUPS | ONLINE_NEED_PREVIOUS));
    c.dpo.name.loss_type = "osp";  // strengths: from the reward set (1) or --judge self
    c.dpo.name.judge = "self";
    c.dpo.name.pairs = "ranked";
    CHECK(online_config_resolve(&c, &e) == 0 && c.dpo.judge == ONLINE_JUDGE_SELF &&
          c.dpo.pairs == ONLINE_PAIRS_RANKED);
    c.dpo.name.judge = "peer";
    CHECK(online_config_resolve(&c, &e) == -1 && strstr(e.msg, "--judge"));
    c.dpo.name.judge = "reward";
    c.dpo.name.loss_type = "srpo";  // revisions: not online
    CHECK(online_config_resolve(&c, &e) == -1 && strstr(e.msg, "srpo"));
    return 0;
}

// the optimizer schedule's length per iteration: epochs x mini-batches
static int test_steps_per_iteration(void) {
    online_config c;
    rlhf_err e;
    CHECK(online_default_config(&c, "ppo", &e) == 0);
    c.base.batch_size = 8;
    CHECK(c.update->steps_per_iteration(&c) == 4);
    c.pg.mini_batch_size = 3;  // 3 + 3 + 2 prompts
    CHECK(c.update->steps_per_iteration(&c) == 12);
    c.pg.mini_batch_size = 20;
    CHECK(c.update->steps_per_iteration(&c) == 4);
    CHECK(online_default_config(&c, "online-dpo", &e) == 0);
    c.num_iterations = 3;
    CHECK(c.update->steps_per_iteration(&c) == 3);
    return 0;
}

static int test_dpo_pairs(void) {
    // two prompts of 3 samples: ties broken to the first best and the last worst;
    // a group of equal scores gives no pair
    const float s[] = {1, 0, 1, 0, 2, 2, 5, 5, 5};
    int ch[27], rj[27];
    CHECK(online_dpo_pairs(ONLINE_PAIRS_MAX_MIN, 3, 3, s, ch, rj) == 2);
    CHECK(ch[0] == 0 && rj[0] == 1 && ch[1] == 4 && rj[1] == 3);
    CHECK(online_dpo_pairs(ONLINE_PAIRS_ALL, 3, 3, s, ch, rj) == 4);
    CHECK(ch[0] == 0 && rj[0] == 1 && ch[1] == 2 && rj[1] == 1);
    CHECK(ch[2] == 4 && rj[2] == 3 && ch[3] == 5 && rj[3] == 3);
    // ranked (OSP): per prompt of 4, best-worst then 2nd best-2nd worst; rows
    // offset by the prompt
    const float r[] = {0.2f, 0.9f, 0.4f, 0.7f, 3, 3, 3, 3, 1, 4, 2, 3};
    CHECK(online_dpo_pairs(ONLINE_PAIRS_RANKED, 3, 4, r, ch, rj) == 4);
    CHECK(ch[0] == 1 && rj[0] == 0 && ch[1] == 3 && rj[1] == 2);
    CHECK(ch[2] == 9 && rj[2] == 8 && ch[3] == 11 && rj[3] == 10);
    return 0;
}

// OSP's judging prompt: the template's fields filled, everything else kept
static int test_judge_text(void) {
    char *t = judge_template_fill("Q: {prompt}|A: {a}|B: {b}|{a}{x}", "1+2=", NULL, "3", "4");
    CHECK(strcmp(t, "Q: 1+2=|A: 3|B: 4|3{x}") == 0);
    free(t);
    t = judge_template_fill(ONLINE_JUDGE_TEMPLATE, "p", NULL, "a", "b");
    CHECK(strcmp(t, "Question: p\nResponse A: a\nResponse B: b\nWhich response is better, A or "
                    "B?\nAnswer:") == 0);
    free(t);
    return 0;
}

int main(void) {
    RUN(test_command_defaults);
    RUN(test_options_declared_once);
    RUN(test_resolve_once);
    RUN(test_declared_needs);
    RUN(test_steps_per_iteration);
    RUN(test_dpo_pairs);
    RUN(test_judge_text);
    TEST_EXIT();
}
