// ctrl/linmdp: a finite linear MDP test bed and FTPedel (Wagenmaker &
// Pacchiano 2023, "Leveraging offline data in online reinforcement learning",
// ICML): policy elimination whose online experiment design accounts for the
// offline data already held, with its two baselines (online-only: the same
// elimination without the offline rows, i.e. PEDEL; offline-only: no episodes).
//
// The MDP: S states, A actions, horizon H, features phi(s, a) in R^d (known to
// the learner). Transitions and mean rewards are linear in the features:
//   P_h(s' | s, a) = <phi(s, a), mu_h(., s')>,   E r_h(s, a) = <phi(s, a), theta_h>,
// rewards are Bernoulli with that mean; mu and theta are unknown to the
// learner, which only sees transitions (h, s, a, r, s'). Offline data are such
// rows drawn per step from a coverage distribution over (s, a) (the paper's
// offline data: any logged transitions, not necessarily trajectories).
//
// Estimates (PEDEL's, on counts): Lambda_h = lambda I + sum_rows phi phi^T
// (offline and online rows together), theta^_h = Lambda_h^-1 sum phi r, and a
// policy's feature visitation by the linear-MDP recursion
//   d^_{pi,1} = rho,  phi^_{pi,h} = sum_s d^_{pi,h}(s) phi(s, pi_h(s)),
//   d^_{pi,h+1}(s') = sum_rows 1[s'_row = s'] phi_row^T Lambda_h^-1 phi^_{pi,h},
// V^pi ~ sum_h <phi^_{pi,h}, theta^_h>.
//
// Policies are deterministic: act[h * S + s].
#ifndef RLHF_CTRL_LINMDP_H
#define RLHF_CTRL_LINMDP_H

#include <stdint.h>

#include "base/base.h"

typedef struct {
    int S, A, H, d;
    double *phi;   // [S][A][d]
    double *mu;    // [H][d][S]
    double *theta; // [H][d]
    double *rho;   // [S] initial state distribution
} linmdp;

// A random low-rank instance: phi(s, a) a random point of the d-simplex
// (latent-state mixture weights), mu_h(i, .) a random distribution over
// states per latent i, theta_h in [0, 1]^d, one start state. -1 on bad sizes.
int linmdp_random(linmdp *m, int S, int A, int H, int d, uint64_t seed, rlhf_err *err);

// The study's instance (tabular features, d = S*A, H = 2, A = 2): from the
// start state either action leads to a rare state with probability p_rare,
// else to one of n_common common states uniformly; step-1 rewards 0.8
// (action 0) and 0.2 (action 1). At step 2 the two actions' mean rewards
// differ by gap_common in each common state (better action chosen by seed) and
// by gap_rare in the rare state, so flipping a common state's action costs
// (1 - p_rare) gap_common / n_common and the rare state's p_rare gap_rare.
// States: 0 start, 1..n_common common, n_common + 1 rare.
int linmdp_rare(linmdp *m, int n_common, double p_rare, double gap_rare, double gap_common,
                uint64_t seed, rlhf_err *err);
void linmdp_free(linmdp *m);

double linmdp_p(const linmdp *m, int h, int s, int a, int s2); // P_h(s2 | s, a)
double linmdp_r(const linmdp *m, int h, int s, int a);         // mean reward

// ------------------------------------------------------------- policies --
void linmdp_visits(const linmdp *m, const int *act, double *dist);  // [H][S] state distribution
void linmdp_features(const linmdp *m, const int *act, double *phi); // [H][d] phi_{pi,h}
double linmdp_value_dp(const linmdp *m, const int *act);            // backward Bellman
double linmdp_value_feat(const linmdp *m, const int *act);          // sum_h <phi_{pi,h}, theta_h>
double linmdp_value_mc(const linmdp *m, const int *act, int episodes, rlhf_rng *rng);
double linmdp_optimal(const linmdp *m, int *act); // an optimal policy (DP); returns V*

// Every deterministic policy over the (h, s) reachable from rho (actions of
// unreachable states 0), into pols [K][H*S]; -1 when there are more than maxK.
int linmdp_policies_all(const linmdp *m, int maxK, int *pols, int *K, rlhf_err *err);
// K policies: pols[0] optimal, the others it with each reachable (h, s)
// switched to a random other action with probability flip (at least one).
void linmdp_policies_random(const linmdp *m, int K, double flip, rlhf_rng *rng, int *pols);

// ----------------------------------------------------------------- data --
typedef struct {
    int S, A, H;
    double *cnt;  // [H][S][A][S] transition counts N_h(s, a, s')
    double *nsa;  // [H][S][A] row counts
    double *rsum; // [H][S][A] reward sums
} linmdp_data;

void linmdp_data_init(linmdp_data *D, const linmdp *m);
void linmdp_data_free(linmdp_data *D);
void linmdp_data_copy(linmdp_data *dst, const linmdp_data *src); // dst initialised, same sizes
void linmdp_data_add_row(linmdp_data *D, int h, int s, int a, double r, int s2);
// One episode of policy act (its rows into D when D != NULL); the return.
double linmdp_episode(const linmdp *m, const int *act, rlhf_rng *rng, linmdp_data *D);
// n rows per step h, (s, a) drawn with weights q[h][s][a] (a step with zero
// total weight gets none), s' and r from the MDP.
void linmdp_offline(const linmdp *m, const double *q, int n, rlhf_rng *rng, linmdp_data *D);

// ----------------------------------------------------------- estimation --
void linmdp_gram(const linmdp *m, const linmdp_data *D, int h, double lambda, double *G);
// phi^_{pi,h} [H][d] (may be NULL), d^_{pi,h} [H][S] (may be NULL); returns V^.
double linmdp_estimate(const linmdp *m, const linmdp_data *D, double lambda, const int *act,
                       double *phihat, double *dhat);

// Cholesky inverse of a d x d symmetric positive definite matrix; -1 if not.
int linmdp_spd_inverse(int d, const double *A, double *inv);

// Experiment design: the smallest T >= 0 (and mixture w over ne candidates)
// with max_i v_i^T (A0 + T sum_e w_e Sig_e)^-1 v_i <= 1, v [nv][d],
// Sig [ne][d][d]; Frank-Wolfe on a soft maximum for w, bisection on T.
// Returns T (0 when A0 alone suffices), or a negative number when even tmax
// cannot reach it (w then holds the design at tmax).
double linmdp_design(int d, int nv, const double *v, const double *A0, int ne, const double *Sig,
                     double tmax, double *w);
// max_i v_i^T A^-1 v_i
double linmdp_max_norm(int d, int nv, const double *v, const double *A);

// ------------------------------------------------------------- FTPedel --
typedef struct {
    double eps;        // target: an eps-optimal policy of the class
    double delta;      // confidence (enters beta when beta = 0)
    double beta;       // confidence width factor; 0: 2 log(K^2 H L / delta)
    double lambda;     // ridge
    double ground;     // accuracy of the estimated visitations propagated (default 0.1)
    long max_episodes; // online budget (0: offline-only)
    int use_offline;   // 0: the offline rows are ignored (online-only, PEDEL)
    int verbose;
} linmdp_ftp_opts;

void linmdp_ftp_defaults(linmdp_ftp_opts *o);

typedef struct {
    long episodes; // online episodes used
    int chosen;    // the returned policy
    int certified; // 1: stopped with an eps-optimality guarantee (verifiable)
    int epochs;    // elimination rounds completed
    int survivors; // policies left
    double beta;   // the width factor used
} linmdp_ftp_result;

// FTPedel over the K policies pols [K][H*S] with offline rows D_off (may be
// NULL). active (may be NULL) receives the survivors mask [K].
int linmdp_ftpedel(const linmdp *m, int K, const int *pols, const linmdp_data *D_off,
                   const linmdp_ftp_opts *o, rlhf_rng *rng, linmdp_ftp_result *res, int *active,
                   rlhf_err *err);

#endif
