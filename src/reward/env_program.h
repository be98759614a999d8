// reward/env_program: an environment program for multi-turn episodes (the
// policy speaks, the program answers, several turns, a reward at the end), over
// the external-command plumbing of reward/command.c (reward/sources.h): one
// process under /bin/sh -c, started once per run, in its own process group,
// killed with the trainer (kill -9 included), both pipes polled against a
// deadline. train/episode.h runs the episodes; docs/multiturn.md.
//
// The protocol. For each assistant turn of each episode still going, the program
// receives one line of JSON on stdin:
//   {"episode": E, "turn": K, "last": false, "prompt": "...", "content": "..."}
//     E        the episode's id: a whole number, unique within the run (the
//              program's lifetime); samples of one prompt are different episodes
//     K        1, 2, ...: the assistant turn this line carries
//     last     true on the turn --max_turns: whatever the answer, the episode ends
//     prompt   the episode's first prompt as text (the same on every turn)
//     content  what the assistant said this turn (its end-of-turn marker and
//              anything after it removed; bytes that are not UTF-8 as U+FFFD)
// and answers it with one line of JSON on stdout, in the order asked:
//   {"content": "..."}                 the environment's (user / tool) turn: the
//                                      episode goes on; the text is rendered as a
//                                      user message of the chat template
//   {"content": "...", "reward": r}    the same, remembering r as the reward so far
//   {"done": true, "reward": r}        the episode ends with reward r
// r must be a finite number; other keys are ignored. An episode also ends without
// "done": after its turn "last" (the reward is the answer's "reward" if it has
// one, else the last one it gave, else 0), or when the conversation has no room
// for the environment's turn plus another assistant turn in the model's context
// (reward: the last one given, else 0). No line announces such an end: a program
// that keeps state per episode may simply drop it when it sees a new id.
//
// Batching: all active episodes' lines of one turn are written before their
// answers are read (both pipes polled), as reward commands are; the program must
// flush after each answer (Python: print(json.dumps(x), flush=True)). A line
// that is not a JSON object, a "content" that is not a string, a missing or
// non-finite "reward" with "done", no answer within the timeout (the trainers'
// --reward_timeout), a program that exits or answers more lines than asked: the
// rollout fails with a message naming the program and the reason, and the
// program's process group is killed.
#ifndef RLHF_REWARD_ENV_PROGRAM_H
#define RLHF_REWARD_ENV_PROGRAM_H

#include "base/base.h"

typedef struct env_program env_program;

typedef struct {
    long episode;
    int turn, last;
    const char *prompt, *content; // NUL-terminated
} env_request;

typedef struct {
    int done;       // {"done": true}
    int has_reward; // a "reward" was given
    float reward;
    char *content; // malloc'd ("" when done)
} env_answer;

// Starts cmd (/bin/sh -c cmd); timeout_s per answer (<= 0: 30).
int env_program_open(env_program **out, const char *cmd, double timeout_s, rlhf_err *err);
// One turn of n episodes: writes req[0..n), reads ans[0..n). -1 + err (the
// program is then dead: every later call fails).
int env_program_step(env_program *e, const env_request *req, int n, env_answer *ans, rlhf_err *err);
void env_answer_free(env_answer *a);
void env_program_close(env_program *e);

#endif
