// reward/constraint: CGPO's mixture of judges (Xu et al. 2024). A judge looks at
// one (prompt, completion) and says whether it violates a constraint; a sample
// passes when no judge flags it. The rule judges run here; the scored judges
// (verifiers, reward models, commands, HTTP sources) are reward/sources.h's
// sources with a threshold, scored through one reward_set.
//
// A spec lists judges separated by a comma that is followed by a judge kind and
// ':' (as reward specs are), so a pattern or a command may hold commas:
//
//   regex:PATTERN        the completion must match PATTERN (POSIX extended, bytes)
//   not_regex:PATTERN    the completion must not match PATTERN
//   format:int           the completion, whitespace stripped, is a canonical
//                        integer ("522", "-12", "0"; not "0522", "522 ok" or "")
//   format:nonempty      the completion has a non-whitespace character
//   max_chars:N          at most N bytes
//   max_tokens:N         at most N completion tokens
//   verifier:NAME[:shaped][>T | >=T]   a task's verifier, pass iff score > T (>= T)
//   rm:PATH[>T | >=T]    a reward model (or ensemble): pass iff its score > T (>= T)
//   command:CMD[>T | >=T] an external command (sources.h's protocol): pass iff > T
//   url:URL[>T], judge:URL[>T], llm:..., pairwise:...  any other reward source
// A scored judge's threshold defaults to "> 0" (a verifier: the answer is right,
// or, shaped, at least parses; a command: a positive number). Example:
//   "format:int,max_chars:6,verifier:arith:shaped>=0.3,rm:runs/rm>0.5"
#ifndef RLHF_REWARD_CONSTRAINT_H
#define RLHF_REWARD_CONSTRAINT_H

#include <stdint.h>

#include "reward/sources.h"

typedef struct constraint_set constraint_set;

// Parses a spec (nothing loaded: models and commands wait for constraint_open).
// -1 + err naming the item for a malformed one.
int constraint_parse(constraint_set **out, const char *spec, rlhf_err *err);
// Loads reward models, starts commands, checks tasks (reward_set_open).
int constraint_open(constraint_set *cs, const reward_set_opts *o, rlhf_err *err);
int constraint_count(const constraint_set *cs);
// A judge's name for metrics: "regex", "format:int", "max_chars:6",
// "verifier:arith", "rm:NAME", "command:NAME" (".2", ".3" on repeats).
const char *constraint_name(const constraint_set *cs, int j);
// violated (n, J) = 1 where judge j flags sample i; n_tokens (n) the completion
// lengths in tokens (NULL: max_tokens judges count bytes). -1 + err when a
// scored judge fails (a command that dies, a URL that does not answer).
int constraint_judge(constraint_set *cs, const char *const *prompts,
                     const char *const *completions, const int *n_tokens, int n,
                     uint8_t *violated, rlhf_err *err);
void constraint_free(constraint_set *cs);

#endif
