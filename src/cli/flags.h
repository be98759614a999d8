// cli/flags: table-driven flags for every command. `--name value` or
// `--name=value`; booleans also as a bare `--name`. `--config FILE` reads a
// JSON object whose keys are the same flag names (values from the command line
// win). Unknown flags and bad values are refused with a message naming the
// flag. `--help` prints the table: name, meaning, default.
#ifndef RLHF_CLI_FLAGS_H
#define RLHF_CLI_FLAGS_H

#include "base/base.h"

// FLAG_AUTO: a boolean that may also be left to a default decided later (an
// int: 1 true, 0 false, -1 "auto"; the values true/false/auto, bare --name = true).
typedef enum { FLAG_STR, FLAG_INT, FLAG_FLOAT, FLAG_BOOL, FLAG_U64, FLAG_DOUBLE, FLAG_AUTO } flag_type;

typedef struct {
    const char *name;
    flag_type type;
    void *ptr;         // const char **, int *, float *, int *, uint64_t *, double *, int *
    const char *help;
    double lo, hi;     // accepted range for numbers (both 0: any)
    const char *alias; // another accepted name (e.g. "batch_size")
} flag_def;

// Parses argv (without the command name). Returns 0, 1 if --help was printed
// (the caller exits 0), or -1 with err naming the flag.
int flags_parse(int argc, char **argv, const flag_def *defs, const char *cmd, const char *about,
                rlhf_err *err);
// Frees the string values read from --config files. Only for a caller that no
// longer uses any flag value (the fuzz harness, tests): values stay valid until then.
void flags_free_config_strings(void);
// The flags' current values as a JSON object (malloc'd), for run directories.
char *flags_to_json(const flag_def *defs);

#endif
