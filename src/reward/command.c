// reward/command: an external judge as a reward source. The user's program is
// started once (fork + /bin/sh -c, in its own process group, under a watchdog
// that kills the group when the trainer is gone) with pipes on its
// stdin and stdout; each batch is written as JSON lines and answered with one
// number per line. Both pipes are non-blocking and polled against a deadline,
// so a judge that dies, hangs or talks nonsense becomes an error message, never
// a hung or crashed trainer. The protocol is documented in reward/sources.h.
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reward/sources.h"

struct reward_command {
    char *cmd;
    pid_t pid;
    int to_child, from_child; // our ends of its stdin and stdout; -1 once closed
    int lifeline;             // write end of the watchdog's lifeline pipe; -1 once closed
    double timeout_s;
    char *buf;                // bytes read but not yet a complete answer line
    size_t len, cap;
    long answered;            // answers received over the run
    int dead;                 // exited, killed or failed: no more requests
    char what[32];            // how messages name it ("reward command", "env program")
    char timeout_flag[32];    // the flag that sets timeout_s, for the timeout message
};

// ------------------------------------------------------------- JSON text --

static void put(char **s, size_t *n, size_t *cap, const char *p, size_t k) {
    if (*n + k + 1 > *cap) {
        *cap = (*n + k + 1) * 2;
        *s = xrealloc(*s, *cap);
    }
    memcpy(*s + *n, p, k);
    *n += k;
    (*s)[*n] = 0;
}

// length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid
static int utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    int k;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) k = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) k = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) k = 4, min = 0x10000;
    else return 0;
    if ((size_t)k > n) return 0;
    unsigned cp = c & (0x7F >> k);
    for (int i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

cJSON *reward_json_text(const char *s) {
    char *j = reward_json_string(s, strlen(s));
    cJSON *x = cJSON_CreateRaw(j);
    free(j);
    return x;
}

char *reward_json_string(const char *s, size_t len) {
    size_t n = 0, cap = len + 16;
    char *o = xmalloc(cap);
    put(&o, &n, &cap, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(&o, &n, &cap, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
            if (named) put(&o, &n, &cap, named, 2);
            else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                put(&o, &n, &cap, esc, 6);
            }
            i++;
        } else {
            int k = utf8_len(p + i, len - i);
            if (k == 0) {
                put(&o, &n, &cap, "\\ufffd", 6);
                i++;
            } else {
                put(&o, &n, &cap, (const char *)p + i, (size_t)k);
                i += (size_t)k;
            }
        }
    }
    put(&o, &n, &cap, "\"", 1);
    return o;
}

// --------------------------------------------------------------- process --

static void ignore_sigpipe(void) {
    // a judge that dies while we write must give EPIPE, not kill the trainer
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
}

// The judge must not outlive the trainer, however the trainer ends (kill -9
// included), and neither may anything the judge started (`sh -c 'helper & judge'`,
// a Python judge's subprocesses). A parent-death signal (prctl PR_SET_PDEATHSIG)
// reaches only the one child, fires when the forking *thread* ends rather than the
// process, and needs a getppid() check against the race before it is set. So the
// child we fork is a small watchdog W instead: it leads the judge's process group,
// forks the judge (/bin/sh -c CMD) into it, and waits on two things: the judge
// ending, whose wait status it passes on as its own (so c->pid's status is the
// judge's), and end-of-file on a "lifeline" pipe whose only write end the trainer
// holds. The kernel closes that end when the trainer process ends in any way, and
// then W kills the whole group, itself included. There is no race: a trainer that
// died before W looks reads as end-of-file at once. W does not exec, so it closes
// every descriptor it inherited (other judges' pipes, files being written), or it
// would keep a pipe open that should report end-of-file or EPIPE. Only
// async-signal-safe calls in W and in the judge before exec (the trainer has threads).
static void on_sigchld(int sig) { (void)sig; }

static void close_from(int lo, int keep) { // closes fds >= lo except keep
#ifdef SYS_close_range
    if (keep < lo) {
        if (syscall(SYS_close_range, (unsigned)lo, ~0U, 0) == 0) return;
    } else if ((keep == lo || syscall(SYS_close_range, (unsigned)lo, (unsigned)keep - 1, 0) == 0) &&
               syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0) == 0)
        return;
#endif
    struct rlimit rl;
    long hi = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) hi = (long)rl.rlim_cur;
    if (hi > 1 << 20) hi = 1 << 20;
    for (long fd = lo; fd < hi; fd++)
        if (fd != keep) close((int)fd);
}

static _Noreturn void watchdog(const char *cmd, int in_r, int out_w, int life_r) {
    sigset_t chld, orig;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &orig); // SIGCHLD is taken only inside ppoll below
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    pid_t judge = fork();
    if (judge < 0) _exit(127);
    if (judge == 0) { // the judge: W's group, the trainer's signal mask
        sigprocmask(SIG_SETMASK, &orig, NULL);
        signal(SIGPIPE, SIG_DFL);
        dup2(in_r, 0);
        dup2(out_w, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int fd = 0; fd < 2; fd++)
        if (fd != life_r) close(fd);
    close_from(3, life_r); // keeps stderr and the lifeline
    sigset_t wait_mask = orig;
    sigdelset(&wait_mask, SIGCHLD);
    for (;;) {
        int st;
        pid_t r = waitpid(judge, &st, WNOHANG);
        if (r == judge) {
            if (WIFSIGNALED(st)) { // end the same way, without a core file
                struct rlimit no_core = {0, 0};
                setrlimit(RLIMIT_CORE, &no_core);
                signal(WTERMSIG(st), SIG_DFL);
                sigset_t all;
                sigfillset(&all);
                sigprocmask(SIG_UNBLOCK, &all, NULL);
                kill(getpid(), WTERMSIG(st));
                _exit(128 + WTERMSIG(st));
            }
            _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 127);
        }
        if (r < 0 && errno != EINTR) _exit(127);
        struct pollfd pf = {life_r, POLLIN, 0};
        int k = ppoll(&pf, 1, NULL, &wait_mask);
        if (k > 0) { // end-of-file (or anything at all) on the lifeline: the trainer is gone
            kill(0, SIGKILL);
            _exit(137);
        }
    }
}

int reward_command_start(reward_command **out, const char *cmd, double timeout_s, rlhf_err *err) {
    int in[2], outp[2], life[2];
    *out = NULL;
    if (!cmd || !*cmd) return rlhf_fail(err, "reward command: empty command");
    if (pipe2(in, O_CLOEXEC)) return rlhf_fail(err, "reward command \"%s\": pipe: %s", cmd, strerror(errno));
    if (pipe2(outp, O_CLOEXEC)) {
        close(in[0]), close(in[1]);
        return rlhf_fail(err, "reward command \"%s\": pipe: %s", cmd, strerror(errno));
    }
    if (pipe2(life, O_CLOEXEC)) {
        close(in[0]), close(in[1]), close(outp[0]), close(outp[1]);
        return rlhf_fail(err, "reward command \"%s\": pipe: %s", cmd, strerror(errno));
    }
    ignore_sigpipe();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]), close(in[1]), close(outp[0]), close(outp[1]);
        close(life[0]), close(life[1]);
        return rlhf_fail(err, "reward command \"%s\": fork: %s", cmd, strerror(errno));
    }
    if (pid == 0) { // the watchdog, leader of the judge's process group
        setpgid(0, 0);
        watchdog(cmd, in[0], outp[1], life[0]);
    }
    setpgid(pid, pid); // also here: no race with the child's own call
    close(in[0]);
    close(outp[1]);
    close(life[0]);
    fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    fcntl(outp[0], F_SETFL, fcntl(outp[0], F_GETFL) | O_NONBLOCK);
    reward_command *c = xcalloc(1, sizeof *c);
    c->cmd = strdup(cmd);
    c->pid = pid;
    c->to_child = in[1];
    c->from_child = outp[0];
    c->lifeline = life[1];
    c->timeout_s = timeout_s > 0 ? timeout_s : 30;
    snprintf(c->what, sizeof c->what, "reward command");
    snprintf(c->timeout_flag, sizeof c->timeout_flag, "--reward_timeout");
    *out = c;
    return 0;
}

void reward_command_set_names(reward_command *c, const char *what, const char *timeout_flag) {
    if (what) snprintf(c->what, sizeof c->what, "%s", what);
    if (timeout_flag) snprintf(c->timeout_flag, sizeof c->timeout_flag, "%s", timeout_flag);
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// waits up to grace seconds for the child; then kills its group. Returns the
// wait status, or -1 if it had to be killed.
static int reap(reward_command *c, double grace) {
    if (c->pid <= 0) return -1;
    int st = 0;
    double t0 = time_now();
    for (;;) {
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            kill(-c->pid, SIGKILL);  // whatever it left behind in its group
            c->pid = 0;
            return st;
        }
        if (r < 0) {
            c->pid = 0;
            return -1;
        }
        if (time_now() - t0 >= grace) break;
        sleep_ms(5);
    }
    kill(-c->pid, SIGKILL);
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &st, 0);
    c->pid = 0;
    return -1;
}

// the judge is gone or must go: close pipes, reap, describe how it ended
static void describe_end(reward_command *c, char *why, size_t n) {
    close_fd(&c->to_child);
    close_fd(&c->from_child);
    int st = reap(c, 2.0);
    c->dead = 1;
    if (st == -1) snprintf(why, n, "closed its output and was killed");
    else if (WIFEXITED(st))
        snprintf(why, n, "exited with status %d%s", WEXITSTATUS(st),
                 WEXITSTATUS(st) == 127 ? " (command not found?)" : "");
    else if (WIFSIGNALED(st))
        snprintf(why, n, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else snprintf(why, n, "ended");
}

static int fail_and_kill(reward_command *c, rlhf_err *err, const char *fmt, const char *a,
                         long got, int n) {
    char what[300];
    snprintf(what, sizeof what, fmt, a);
    close_fd(&c->to_child);
    close_fd(&c->from_child);
    if (c->pid > 0) {
        kill(-c->pid, SIGKILL);
        reap(c, 0);
    }
    c->dead = 1;
    return rlhf_fail(err, "%s \"%s\": %s (%ld of %d answers of this batch received)", c->what,
                     c->cmd, what, got, n);
}

// the start of text for a message: its first line, at most 40 bytes, control
// characters as '?', "..." when something was left out
static void snippet(char *out, size_t n, const char *text) {
    size_t k = 0, cap = n > 4 ? n - 4 : 0;
    const char *p = text;
    while (*p && *p != '\n' && k < 40 && k < cap) {
        unsigned char ch = (unsigned char)*p++;
        out[k++] = ch < 0x20 || ch == 0x7F ? '?' : (char)ch;
    }
    if (*p && k + 3 < n) memcpy(out + k, "...", 3), k += 3;
    out[k] = 0;
}

// one answer line -> *v; 0 ok, -1 not a finite number
static int parse_answer(char *line, float *v) {
    char *s = line, *e = line + strlen(line);
    while (*s == ' ' || *s == '\t') s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
    if (!*s) return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(x)) return -1;
    *v = (float)x;
    return 0;
}

// the judge's answer i: one finite number
static int number_line(void *ctx, int i, char *line, char *why, size_t why_n) {
    if (parse_answer(line, (float *)ctx + i) == 0) return 0;
    char first[48];
    snippet(first, sizeof first, line);
    snprintf(why, why_n, "answer is not a finite number: \"%s\"", first);
    return -1;
}

int reward_command_score(reward_command *c, const char *const *prompts,
                         const char *const *completions, int n, float *out, rlhf_err *err) {
    if (c->dead) return rlhf_fail(err, "%s \"%s\": no longer running", c->what, c->cmd);
    if (n <= 0) return 0;
    // all requests of the batch, one JSON object per line
    size_t len = 0, cap = 256;
    char *req = xmalloc(cap);
    req[0] = 0;
    for (int i = 0; i < n; i++) {
        char *p = reward_json_string(prompts[i], strlen(prompts[i]));
        char *q = reward_json_string(completions[i], strlen(completions[i]));
        put(&req, &len, &cap, "{\"prompt\": ", 11);
        put(&req, &len, &cap, p, strlen(p));
        put(&req, &len, &cap, ", \"completion\": ", 16);
        put(&req, &len, &cap, q, strlen(q));
        put(&req, &len, &cap, "}\n", 2);
        free(p);
        free(q);
    }
    int rc = reward_command_exchange(c, req, len, n, number_line, out, err);
    free(req);
    return rc;
}

// bytes that arrived after the last batch was complete: answers nobody asked for
static int leftover(reward_command *c, int n, rlhf_err *err) {
    char chunk[4096];
    for (;;) {
        ssize_t k = read(c->from_child, chunk, sizeof chunk - 1);
        if (k <= 0) break;  // EAGAIN (nothing pending), or EOF: the exchange reports it
        if (c->len + (size_t)k + 1 > c->cap) {
            c->cap = (c->len + (size_t)k + 1) * 2;
            c->buf = xrealloc(c->buf, c->cap);
        }
        memcpy(c->buf + c->len, chunk, (size_t)k);
        c->len += (size_t)k;
        c->buf[c->len] = 0;
    }
    if (c->len == 0) return 0;
    char first[48];
    snippet(first, sizeof first, c->buf);
    return fail_and_kill(c, err, "answered more lines than it was asked (extra: \"%s\")", first, 0,
                         n);
}

// the complete lines in c->buf: answers *got.. through on_line; -1 + err on a bad one
static int take_lines(reward_command *c, int n, int *got, reward_command_line_fn on_line,
                      void *ctx, rlhf_err *err) {
    char *line = c->buf, *nl;
    while ((nl = memchr(line, '\n', c->len - (size_t)(line - c->buf)))) {
        *nl = 0;
        char first[48], why[300];
        if (*got >= n) {  // more answers than requests
            snippet(first, sizeof first, line);
            return fail_and_kill(c, err, "answered more lines than it was asked (extra: \"%s\")",
                                 first, *got, n);
        }
        if (on_line(ctx, *got, line, why, sizeof why))
            return fail_and_kill(c, err, "%s", why, *got, n);
        (*got)++;
        c->answered++;
        line = nl + 1;
    }
    size_t rest = c->len - (size_t)(line - c->buf);
    memmove(c->buf, line, rest);
    c->len = rest;
    if (c->len > (1u << 20)) return fail_and_kill(c, err, "%s", "wrote over 1 MB without a newline", *got, n);
    return 0;
}

int reward_command_exchange(reward_command *c, const char *req, size_t len, int n,
                            reward_command_line_fn on_line, void *ctx, rlhf_err *err) {
    if (c->dead) return rlhf_fail(err, "%s \"%s\": no longer running", c->what, c->cmd);
    if (n <= 0) return 0;
    if (leftover(c, n, err)) return -1;
    size_t sent = 0;
    int got = 0;
    double deadline = time_now() + c->timeout_s;
    char chunk[4096];
    while (got < n) {
        struct pollfd pf[2];
        int np = 0, wi = -1;
        pf[np++] = (struct pollfd){.fd = c->from_child, .events = POLLIN};
        if (sent < len) {
            wi = np;
            pf[np++] = (struct pollfd){.fd = c->to_child, .events = POLLOUT};
        }
        double left = deadline - time_now();
        if (left <= 0) {
            char t[80];
            snprintf(t, sizeof t, "%g s (%s)", c->timeout_s, c->timeout_flag);
            return fail_and_kill(c, err, "no answer within %s; killed it", t, got, n);
        }
        int r = poll(pf, (nfds_t)np, (int)(left * 1000) + 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            return fail_and_kill(c, err, "poll: %s", strerror(errno), got, n);
        }
        if (r == 0) continue;  // the deadline check above reports it
        if (wi >= 0 && (pf[wi].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(c->to_child, req + sent, len - sent);
            if (w > 0) sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                if (errno != EPIPE) return fail_and_kill(c, err, "write: %s", strerror(errno), got, n);
                char why[200];
                describe_end(c, why, sizeof why);
                return fail_and_kill(c, err, "%s before reading its input", why, got, n);
            }
        }
        if (pf[0].revents & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t k = read(c->from_child, chunk, sizeof chunk);
            if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (k <= 0) {
                char why[200];
                if (k < 0) snprintf(why, sizeof why, "read: %s", strerror(errno));
                else describe_end(c, why, sizeof why);
                return fail_and_kill(c, err, "%s", why, got, n);
            }
            if (c->len + (size_t)k + 1 > c->cap) {
                c->cap = (c->len + (size_t)k + 1) * 2;
                c->buf = xrealloc(c->buf, c->cap);
            }
            memcpy(c->buf + c->len, chunk, (size_t)k);
            c->len += (size_t)k;
            c->buf[c->len] = 0;
            int before = got;
            if (take_lines(c, n, &got, on_line, ctx, err)) return -1;
            if (got > before) deadline = time_now() + c->timeout_s;
        }
    }
    return 0;
}

void reward_command_close(reward_command *c) {
    if (!c) return;
    close_fd(&c->to_child);  // EOF on its stdin: a well-behaved judge exits
    close_fd(&c->from_child);
    if (c->pid > 0) reap(c, c->dead ? 0 : 1.0);
    close_fd(&c->lifeline); // after the reap: closing it first would kill a judge still exiting
    free(c->cmd);
    free(c->buf);
    free(c);
}
