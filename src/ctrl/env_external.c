// ctrl/env_external: an environment that is another program, spoken to over
// pipes, one JSON object a line ("cmd:PROGRAM ARGS" in ctrl_env_make; the
// command runs under /bin/sh -c, its stderr passes through to ours).
//
// The protocol. The program starts by printing its spaces on one line:
//   {"obs_dim": N, "act_dim": M, "act_low": [M numbers], "act_high": [M numbers],
//    "max_episode_steps": K}                       (K 0 or absent: no time limit)
// Then it reads requests on stdin and answers each that asks for an answer
// with exactly one line on stdout:
//   {"cmd": "seed", "seed": S}            no answer; sent before the next reset
//                                          whenever the seed changed (first: 0)
//   {"cmd": "reset"}                   -> {"obs": [N numbers]}
//   {"cmd": "step", "action": [M numbers]}
//                                      -> {"obs": [N numbers], "reward": r,
//                                          "terminated": true|false, "cost": c}
//                                          ("cost" optional, 0 when absent)
//   {"cmd": "close"}                      no answer; then its stdin closes and
//                                          it should exit (killed after 1 s)
// Actions arrive already clipped to [act_low, act_high]; the time limit is
// counted on our side (ctrl_env_step), the program need not track it.
//
// Every reply is checked: JSON, the fields and their lengths, finite numbers.
// A bad reply, a program that exits, or one that is silent for longer than the
// timeout (30 s; RLHF_ENV_TIMEOUT or ctrl_env_external_set_timeout) is an error
// naming the program and the line of its output, and the program (its whole
// process group) is killed: never a hang. The pipe handling follows
// reward/command.c (non-blocking pipes polled against a deadline, own process
// group, SIGPIPE ignored), in a smaller form: this program is started without
// command.c's watchdog process, with a parent-death signal instead.
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctrl/env.h"

#define LINE_MAX_BYTES (1 << 20)

typedef struct {
    char *cmd;
    pid_t pid;                // the program's process group leader (/bin/sh); 0 once reaped
    int to_child, from_child; // our ends of its stdin and stdout; -1 once closed
    double timeout_s;
    char *buf; // bytes read but not yet a complete line
    size_t len, cap;
    long lines; // lines received from it so far
    int dead;   // failed or gone: no more requests
    uint64_t seed;
    int seed_pending; // send {"cmd":"seed"} before the next reset
} external_state;

static double timeout_set = 0; // ctrl_env_external_set_timeout; 0: not set

void ctrl_env_external_set_timeout(double seconds) {
    timeout_set = seconds;
}

static double timeout_now(void) {
    if (timeout_set > 0) return timeout_set;
    const char *s = getenv("RLHF_ENV_TIMEOUT");
    if (s && *s) {
        char *end;
        double v = strtod(s, &end);
        if (!*end && v > 0 && isfinite(v)) return v;
    }
    return 30.0;
}

// --------------------------------------------------------------- process --

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// waits up to grace seconds for the program to end, then kills its group; the
// wait status, or -1 when it had to be killed
static int reap(external_state *x, double grace) {
    if (x->pid <= 0) return -1;
    int st = 0;
    double t0 = time_now();
    for (;;) {
        pid_t r = waitpid(x->pid, &st, WNOHANG);
        if (r == x->pid) {
            kill(-x->pid, SIGKILL); // whatever it left behind in its group
            x->pid = 0;
            return st;
        }
        if (r < 0) {
            x->pid = 0;
            return -1;
        }
        if (time_now() - t0 >= grace) break;
        sleep_ms(5);
    }
    kill(-x->pid, SIGKILL);
    waitpid(x->pid, &st, 0);
    x->pid = 0;
    return -1;
}

// the program closed its end: how it ended (waits a moment for its status)
static void describe_end(external_state *x, char *why, size_t n) {
    close_fd(&x->to_child);
    close_fd(&x->from_child);
    int st = reap(x, 2.0);
    if (st == -1)
        snprintf(why, n, "closed its output and was killed");
    else if (WIFEXITED(st))
        snprintf(why, n, "exited with status %d%s", WEXITSTATUS(st),
                 WEXITSTATUS(st) == 127 ? " (command not found?)" : "");
    else if (WIFSIGNALED(st))
        snprintf(why, n, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(why, n, "ended");
}

// kills the program and fills err: env "cmd:PROGRAM": WHAT
static int fail(external_state *x, rlhf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(external_state *x, rlhf_err *err, const char *fmt, ...) {
    char what[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    close_fd(&x->to_child);
    close_fd(&x->from_child);
    if (x->pid > 0) {
        kill(-x->pid, SIGKILL);
        reap(x, 0);
    }
    x->dead = 1;
    return rlhf_fail(err, "env \"cmd:%s\": %s", x->cmd, what);
}

static int start(external_state *x, rlhf_err *err) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC))
        return rlhf_fail(err, "env \"cmd:%s\": pipe: %s", x->cmd, strerror(errno));
    if (pipe2(out, O_CLOEXEC)) {
        close(in[0]), close(in[1]);
        return rlhf_fail(err, "env \"cmd:%s\": pipe: %s", x->cmd, strerror(errno));
    }
    // a program that dies while we write must give EPIPE, not end us
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return rlhf_fail(err, "env \"cmd:%s\": fork: %s", x->cmd, strerror(errno));
    }
    if (pid == 0) { // only async-signal-safe calls until exec
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL); // do not outlive us (the forking thread)
        if (getppid() != parent) _exit(127);
        signal(SIGPIPE, SIG_DFL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl("/bin/sh", "sh", "-c", x->cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid); // also here: no race with the child's own call
    close(in[0]);
    close(out[1]);
    fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
    x->pid = pid;
    x->to_child = in[1];
    x->from_child = out[0];
    return 0;
}

// ---------------------------------------------------------- the protocol --

// the start of a line for a message: at most 60 bytes, control characters as '?'
static void snippet(char *out, size_t n, const char *text) {
    size_t k = 0;
    const char *p = text;
    while (*p && k < 60 && k + 4 < n) {
        unsigned char ch = (unsigned char)*p++;
        out[k++] = ch < 0x20 || ch == 0x7F ? '?' : (char)ch;
    }
    if (*p && k + 3 < n) memcpy(out + k, "...", 3), k += 3;
    out[k] = 0;
}

// adds bytes read from the program to x->buf
static void append(external_state *x, const char *p, size_t k) {
    if (x->len + k + 1 > x->cap) {
        x->cap = (x->len + k + 1) * 2;
        x->buf = xrealloc(x->buf, x->cap);
    }
    memcpy(x->buf + x->len, p, k);
    x->len += k;
    x->buf[x->len] = 0;
}

// writes one request line (text ends in '\n'), waiting at most the timeout
static int send_line(external_state *x, const char *text, const char *what, rlhf_err *err) {
    if (x->dead) return rlhf_fail(err, "env \"cmd:%s\": no longer running", x->cmd);
    char chunk[4096]; // a line nobody asked for means we and the program disagree
    ssize_t k;
    while ((k = read(x->from_child, chunk, sizeof chunk)) > 0) append(x, chunk, (size_t)k);
    if (x->len > 0) {
        char s[80];
        snippet(s, sizeof s, x->buf);
        return fail(x, err, "line %ld of its output was not asked for (before %s): \"%s\"",
                    x->lines + 1, what, s);
    }
    size_t n = strlen(text), sent = 0;
    double deadline = time_now() + x->timeout_s;
    while (sent < n) {
        double left = deadline - time_now();
        if (left <= 0)
            return fail(x, err, "does not read its input (%s) within %g s; killed it", what,
                        x->timeout_s);
        struct pollfd pf = {x->to_child, POLLOUT, 0};
        int r = poll(&pf, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) return fail(x, err, "poll: %s", strerror(errno));
        if (r <= 0) continue;
        ssize_t w = write(x->to_child, text + sent, n - sent);
        if (w > 0)
            sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            char why[200];
            if (errno == EPIPE)
                describe_end(x, why, sizeof why);
            else
                snprintf(why, sizeof why, "write: %s", strerror(errno));
            return fail(x, err, "%s before reading the %s request", why, what);
        }
    }
    return 0;
}

// waits for the next line of the program's output; a malloc'd copy in *line
static int recv_line(external_state *x, const char *what, char **line, rlhf_err *err) {
    *line = NULL;
    char chunk[4096];
    double deadline = time_now() + x->timeout_s;
    for (;;) {
        char *nl = x->len ? memchr(x->buf, '\n', x->len) : NULL;
        if (nl) {
            size_t k = (size_t)(nl - x->buf);
            *line = xmalloc(k + 1);
            memcpy(*line, x->buf, k);
            (*line)[k] = 0;
            memmove(x->buf, nl + 1, x->len - k - 1);
            x->len -= k + 1;
            x->lines++;
            return 0;
        }
        if (x->len > LINE_MAX_BYTES)
            return fail(x, err, "line %ld of its output (%s): over 1 MB without a newline",
                        x->lines + 1, what);
        double left = deadline - time_now();
        if (left <= 0)
            return fail(x, err, "no %s within %g s (line %ld of its output); killed it", what,
                        x->timeout_s, x->lines + 1);
        struct pollfd pf = {x->from_child, POLLIN, 0};
        int r = poll(&pf, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) return fail(x, err, "poll: %s", strerror(errno));
        if (r <= 0) continue;
        ssize_t k = read(x->from_child, chunk, sizeof chunk);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (k <= 0) {
            char why[200];
            if (k < 0)
                snprintf(why, sizeof why, "read: %s", strerror(errno));
            else
                describe_end(x, why, sizeof why);
            return fail(x, err, "%s before its %s (line %ld of its output)", why, what,
                        x->lines + 1);
        }
        append(x, chunk, (size_t)k);
    }
}

// one reply line as a JSON object (freed by the caller)
static int recv_object(external_state *x, const char *what, char **line, cJSON **obj,
                       rlhf_err *err) {
    *obj = NULL;
    if (recv_line(x, what, line, err)) return -1;
    cJSON *j = cJSON_Parse(*line);
    if (!j || !cJSON_IsObject(j)) {
        char s[80];
        snippet(s, sizeof s, *line);
        cJSON_Delete(j);
        int rc = fail(x, err, "line %ld of its output (%s) is not a JSON object: \"%s\"", x->lines,
                      what, s);
        free(*line);
        *line = NULL;
        return rc;
    }
    *obj = j;
    return 0;
}

// a bad field in the reply on line x->lines: the message names it and quotes the line
static int bad_reply(external_state *x, rlhf_err *err, const char *what, const char *line,
                     const char *field, const char *problem) {
    char s[80];
    snippet(s, sizeof s, line);
    return fail(x, err, "line %ld of its output (%s): field \"%s\" %s: \"%s\"", x->lines, what,
                field, problem, s);
}

// obj[field] must be an array of exactly n finite numbers -> out
static int get_numbers(external_state *x, rlhf_err *err, const char *what, const char *line,
                       const cJSON *obj, const char *field, int n, float *out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, field);
    char problem[80];
    if (!a) return bad_reply(x, err, what, line, field, "is missing");
    if (!cJSON_IsArray(a)) return bad_reply(x, err, what, line, field, "is not an array");
    int k = cJSON_GetArraySize(a);
    if (k != n) {
        snprintf(problem, sizeof problem, "has %d numbers, expected %d", k, n);
        return bad_reply(x, err, what, line, field, problem);
    }
    int i = 0;
    for (const cJSON *v = a->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            snprintf(problem, sizeof problem, "element %d is not a finite number", i);
            return bad_reply(x, err, what, line, field, problem);
        }
        out[i] = (float)v->valuedouble;
    }
    return 0;
}

static int get_number(external_state *x, rlhf_err *err, const char *what, const char *line,
                      const cJSON *obj, const char *field, int required, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!v) {
        if (required) return bad_reply(x, err, what, line, field, "is missing");
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad_reply(x, err, what, line, field, "is not a finite number");
    *out = v->valuedouble;
    return 0;
}

// ------------------------------------------------------------ the table --

static int external_reset(ctrl_env *e, float *obs, rlhf_err *err) {
    external_state *x = e->state;
    char req[64];
    if (x->seed_pending) {
        snprintf(req, sizeof req, "{\"cmd\":\"seed\",\"seed\":%llu}\n",
                 (unsigned long long)x->seed);
        if (send_line(x, req, "seed", err)) return -1;
        x->seed_pending = 0;
    }
    if (send_line(x, "{\"cmd\":\"reset\"}\n", "reset", err)) return -1;
    char *line;
    cJSON *j;
    if (recv_object(x, "reply to reset", &line, &j, err)) return -1;
    int rc = get_numbers(x, err, "reply to reset", line, j, "obs", e->obs_dim, obs);
    cJSON_Delete(j);
    free(line);
    return rc;
}

static int external_step(ctrl_env *e, const float *action, float *obs, ctrl_step_info *info,
                         rlhf_err *err) {
    external_state *x = e->state;
    size_t cap = 64 + (size_t)e->act_dim * 20, n = 0;
    char *req = xmalloc(cap);
    n += (size_t)snprintf(req, cap, "{\"cmd\":\"step\",\"action\":[");
    for (int i = 0; i < e->act_dim; i++) // %.9g: the float comes back exactly
        n += (size_t)snprintf(req + n, cap - n, "%s%.9g", i ? "," : "", (double)action[i]);
    snprintf(req + n, cap - n, "]}\n");
    int rc = send_line(x, req, "step", err);
    free(req);
    if (rc) return -1;
    const char *what = "reply to step";
    char *line;
    cJSON *j;
    if (recv_object(x, what, &line, &j, err)) return -1;
    double reward = 0, cost = 0;
    rc = get_numbers(x, err, what, line, j, "obs", e->obs_dim, obs);
    if (!rc) rc = get_number(x, err, what, line, j, "reward", 1, &reward);
    if (!rc) rc = get_number(x, err, what, line, j, "cost", 0, &cost);
    if (!rc) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "terminated");
        if (!t)
            rc = bad_reply(x, err, what, line, "terminated", "is missing");
        else if (!cJSON_IsBool(t))
            rc = bad_reply(x, err, what, line, "terminated", "is not true or false");
        else
            info->terminated = cJSON_IsTrue(t);
    }
    if (!rc && (!isfinite((float)reward) || !isfinite((float)cost)))
        rc = bad_reply(x, err, what, line, isfinite((float)reward) ? "cost" : "reward",
                       "does not fit a float");
    info->reward = (float)reward;
    info->cost = (float)cost;
    cJSON_Delete(j);
    free(line);
    return rc;
}

static void external_seed(ctrl_env *e, uint64_t seed) {
    external_state *x = e->state;
    x->seed = seed;
    x->seed_pending = 1;
}

static void external_free(ctrl_env *e) {
    external_state *x = e->state;
    if (!x) return;
    if (!x->dead && x->to_child >= 0) { // best effort: a close request, then EOF on its stdin
        const char *bye = "{\"cmd\":\"close\"}\n";
        ssize_t w = write(x->to_child, bye, strlen(bye));
        (void)w;
    }
    close_fd(&x->to_child);
    close_fd(&x->from_child);
    if (x->pid > 0) reap(x, x->dead ? 0 : 1.0);
    free(x->cmd);
    free(x->buf);
    free(x);
    e->state = NULL;
}

static const ctrl_env_ops external_ops = {
    .reset = external_reset, .step = external_step, .free = external_free, .seed = external_seed};

// the first line: {"obs_dim", "act_dim", "act_low", "act_high", "max_episode_steps"}
static int read_spaces(ctrl_env *e, external_state *x, rlhf_err *err) {
    const char *what = "spaces line";
    char *line;
    cJSON *j;
    if (recv_object(x, what, &line, &j, err)) return -1;
    int rc = 0;
    double v = 0;
    const char *dims[2] = {"obs_dim", "act_dim"};
    int *dst[2] = {&e->obs_dim, &e->act_dim};
    for (int i = 0; i < 2 && !rc; i++) {
        rc = get_number(x, err, what, line, j, dims[i], 1, &v);
        if (!rc && (v != floor(v) || v < 1 || v > CTRL_MAX_DIM)) {
            char problem[80];
            snprintf(problem, sizeof problem, "must be a whole number in 1..%d", CTRL_MAX_DIM);
            rc = bad_reply(x, err, what, line, dims[i], problem);
        }
        if (!rc) *dst[i] = (int)v;
    }
    if (!rc) rc = get_numbers(x, err, what, line, j, "act_low", e->act_dim, e->act_low);
    if (!rc) rc = get_numbers(x, err, what, line, j, "act_high", e->act_dim, e->act_high);
    for (int i = 0; i < e->act_dim && !rc; i++)
        if (!(e->act_low[i] <= e->act_high[i]))
            rc = bad_reply(x, err, what, line, "act_low", "is above act_high");
    v = 0;
    if (!rc) rc = get_number(x, err, what, line, j, "max_episode_steps", 0, &v);
    if (!rc && (v != floor(v) || v < 0 || v > 1e9))
        rc = bad_reply(x, err, what, line, "max_episode_steps", "must be a whole number >= 0");
    if (!rc) e->max_episode_steps = (int)v;
    cJSON_Delete(j);
    free(line);
    return rc;
}

int ctrl_env_external_make(const char *cmd, ctrl_env *e, rlhf_err *err) {
    while (*cmd == ' ') cmd++;
    if (!*cmd) return rlhf_fail(err, "env \"cmd:\": no program given (cmd:PROGRAM ARGS)");
    external_state *x = xcalloc(1, sizeof *x);
    x->cmd = strdup(cmd);
    x->to_child = x->from_child = -1;
    x->timeout_s = timeout_now();
    x->seed_pending = 1; // ctrl_env_make seeds with 0; the program hears it before the first reset
    e->state = x;
    e->ops = &external_ops;
    if (start(x, err)) {
        x->dead = 1;
        return -1;
    }
    return read_spaces(e, x, err);
}
