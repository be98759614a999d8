// algo/classify_loss: the loss of a text classifier used as a reward (a
// "discriminator reward", as in the health-text-simplification paper's
// simple-vs-complex classifier): one logit s per text from a score head,
// P(label true) = sigmoid(s), trained with the logistic (binary cross-entropy)
// loss. Pure functions over arrays; the trainer is train/rm_classify.c.
#ifndef RLHF_ALGO_CLASSIFY_LOSS_H
#define RLHF_ALGO_CLASSIFY_LOSS_H

typedef struct {
    double loss;      // sum over rows of the weighted loss w_i * bce_i (what is trained)
    double log_loss;  // sum over rows of bce_i, unweighted (what eval reports)
    double correct;   // rows with [s > 0] == label (a tie s = 0 counts as false)
    double prob_true; // sum of sigmoid(s)
    long rows, positives;
} classify_sums;

// sigmoid(s), without overflow for large |s|.
double classify_prob(double s);

// n texts: logits score (n), labels label (n) in {0, 1}. For each row
//   bce_i = -[y log sigmoid(s) + (1 - y) log(1 - sigmoid(s))]
//         = softplus(s) - y s,
//   w_i = pos_weight when y = 1, else 1 (torch's BCEWithLogitsLoss pos_weight:
//   values > 1 favour recall of the true class on imbalanced data).
// Adds to sums; with dscore != NULL it is OVERWRITTEN (n) with d/ds of
// sum_i w_i bce_i / total_rows (the mean over the step's rows across its
// micro-batches): w_i (sigmoid(s_i) - y_i) / total_rows.
void classify_bce_loss(int n, const float *score, const int *label, float pos_weight,
                       long total_rows, float *dscore, classify_sums *sums);

#endif
