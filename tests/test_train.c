// Trainer plumbing that needs no model: the epoch walk over micro-batches.
#include "test.h"
#include "train/common.h"

// Every unit is visited exactly once per epoch, whatever units % batch is, and
// micro-batches never straddle an epoch (the last one of an epoch is short).
static int test_micro_batch_walk(void) {
    int sizes[][2] = {{20, 8}, {16, 8}, {7, 8}, {1, 1}, {30000, 64}, {5, 2}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int units = sizes[s][0], batch = sizes[s][1];
        long per_epoch = train_micro_batches(units, batch);
        CHECK(per_epoch == (units + batch - 1) / batch);
        int *seen = calloc((size_t)units, sizeof(int));
        for (int e = 0; e < 3; e++) {
            memset(seen, 0, (size_t)units * sizeof(int));
            for (long g = e * per_epoch; g < (e + 1) * per_epoch; g++) {
                int epoch, first, n;
                train_micro_batch(units, batch, g, &epoch, &first, &n);
                CHECKF(epoch == e, "units %d batch %d g %ld: epoch %d", units, batch, g, epoch);
                CHECK(n >= 1 && n <= batch && first >= 0 && first + n <= units);
                for (int i = first; i < first + n && i < units && i >= 0; i++) seen[i]++;
            }
            int once = 1;
            for (int i = 0; i < units; i++) once &= seen[i] == 1;
            CHECKF(once, "units %d batch %d epoch %d: a unit skipped or repeated", units, batch, e);
        }
        free(seen);
    }
    return 0;
}

// Steps for --num_train_epochs: every micro-batch of every epoch, grouped by
// gradient_accumulation_steps (the last step may hold fewer).
static int test_total_steps(void) {
    train_config c;
    memset(&c, 0, sizeof c);
    c.num_train_epochs = 3, c.batch_size = 8, c.gradient_accumulation_steps = 1;
    rlhf_err err;
    CHECK(train_total_steps(&c, 20, &err) == 9); // 3 micro-batches (8, 8, 4) per epoch
    c.gradient_accumulation_steps = 2;
    CHECK(train_total_steps(&c, 20, &err) == 5); // 9 micro-batches in steps of 2
    CHECK_CLOSE(train_epoch_at(&c, 20, 3), 2.0, 1e-12, 0); // 6 of 3-per-epoch micro-batches
    c.max_steps = 4;
    CHECK(train_total_steps(&c, 20, &err) == 4);
    return 0;
}

int main(void) {
    RUN(test_micro_batch_walk);
    RUN(test_total_steps);
    TEST_EXIT();
}
