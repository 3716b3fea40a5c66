/* prefork.c - the FastCGI prefork master.
 *
 * The master owns the listening unix socket and N child slots. It blocks
 * SIGTERM, SIGINT, SIGHUP and SIGCHLD and waits for them with sigtimedwait,
 * so there is no handler racing the loop: a SIGCHLD reaps and respawns, a
 * SIGTERM/SIGINT stops. Children that die in a loop (more than 10 deaths in
 * 10 s) are respawned only after a 1 s back-off, so a broken build does not
 * spin a core.
 *
 * A child starts with default signal dispositions and an empty mask, except
 * SIGTERM/SIGINT (set a flag that gh_prefork_stopping reports; SA_RESTART so
 * the request in flight is not interrupted) and SIGPIPE (ignored: a client
 * that went away must not kill the child). The child also asks the kernel
 * for a SIGTERM when the master dies, so no orphan keeps the socket busy.
 *
 * The stop flag is process state set from a signal handler: the one place a
 * file-scope variable is the right tool. */
#include "web/prefork.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/str.h"
#include "core/timeutil.h"

#define DEATH_WINDOW 10       /* more than this many deaths ... */
#define DEATH_WINDOW_MS 10000 /* ... within this long ... */
#define BACKOFF_MS 1000       /* ... delays the next spawn by this much */
#define STOP_GRACE_MS 5000    /* children get this long to finish, then SIGKILL */

static volatile sig_atomic_t g_stop;

int gh_prefork_stopping(void)
{
    return g_stop != 0;
}

__attribute__((format(printf, 4, 5))) static void plog(const struct gh_logger *lg, enum gh_log_level lvl,
                                                       int errnum, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap); /* a long message is cut, not lost */
    va_end(ap);
    if (lg && lg->sink)
        gh_log(lg, lvl, errnum, "%s", msg);
    else
        (void)fprintf(stderr, "prefork: %s%s%s\n", msg, errnum ? ": " : "", errnum ? strerror(errnum) : "");
}

int gh_prefork_size(int requested, int pg_pool_min, int pg_pool_max)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    long hi = pg_pool_max > 0 ? pg_pool_max : 1;
    /* Each child holds one PostgreSQL connection: never more than the pool. */
    if (requested > 0)
        return (int)(requested > hi ? hi : requested);
    long n = 2 * cores;
    long lo = pg_pool_min < n ? pg_pool_min : n;
    if (lo < 1)
        lo = 1;
    if (n < lo)
        n = lo;
    if (n > hi)
        n = hi;
    return (int)n;
}

/* ---- socket and pid file ------------------------------------------------ */

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(sa->sun_path))
        return GH_ETOOBIG;
    memcpy(sa->sun_path, path, len + 1);
    return GH_OK;
}

/* 1 when something accepts connections on path (another live master). */
static int socket_in_use(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
    close(fd);
    return live;
}

static int open_listener(const struct gh_prefork_opts *o)
{
    struct sockaddr_un sa;
    int fd = -1;
    if (fill_addr(&sa, o->socket_path) != GH_OK) {
        plog(o->log, GH_LOG_ERROR, 0, "socket path '%s' is empty or too long (max %zu bytes)", o->socket_path,
             sizeof(sa.sun_path) - 1);
        goto fail;
    }
    struct stat st;
    if (lstat(o->socket_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            plog(o->log, GH_LOG_ERROR, 0, "%s exists and is not a socket; refusing to remove it",
                 o->socket_path);
            goto fail;
        }
        if (socket_in_use(&sa)) {
            plog(o->log, GH_LOG_ERROR, 0, "%s is in use by a running server", o->socket_path);
            goto fail;
        }
        if (unlink(o->socket_path) != 0 && errno != ENOENT) {
            plog(o->log, GH_LOG_ERROR, errno, "cannot remove stale socket %s", o->socket_path);
            goto fail;
        }
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        plog(o->log, GH_LOG_ERROR, errno, "socket()");
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        plog(o->log, GH_LOG_ERROR, errno, "cannot bind %s", o->socket_path);
        goto fail;
    }
    if (chmod(o->socket_path, 0666) != 0) {
        plog(o->log, GH_LOG_ERROR, errno, "cannot chmod 0666 %s", o->socket_path);
        goto fail_unlink;
    }
    int backlog = o->backlog > 0 ? o->backlog : 1024;
    if (listen(fd, backlog) != 0) {
        plog(o->log, GH_LOG_ERROR, errno, "listen(%s, %d)", o->socket_path, backlog);
        goto fail_unlink;
    }
    return fd;
fail_unlink:
    unlink(o->socket_path);
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

static int write_pid_file(const struct gh_prefork_opts *o)
{
    char tmp[1024];
    if (gh_snprintf(tmp, sizeof(tmp), "%s.tmp", o->pid_file) != GH_OK) {
        plog(o->log, GH_LOG_ERROR, 0, "pid file path too long: %s", o->pid_file);
        return GH_ETOOBIG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        plog(o->log, GH_LOG_ERROR, errno, "cannot write pid file %s", tmp);
        return GH_EIO;
    }
    char line[32];
    int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    int ok = n > 0 && write(fd, line, (size_t)n) == n;
    if (close(fd) != 0)
        ok = 0;
    if (!ok || rename(tmp, o->pid_file) != 0) {
        plog(o->log, GH_LOG_ERROR, errno, "cannot write pid file %s", o->pid_file);
        unlink(tmp);
        return GH_EIO;
    }
    return GH_OK;
}

/* ---- children ----------------------------------------------------------- */

static void child_on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void become_child(const struct gh_prefork_opts *o, int listen_fd, pid_t master)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = child_on_stop;
    sa.sa_flags = SA_RESTART; /* finish the request in flight; poll() still wakes */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    g_stop = 0;

    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master) /* the master died before prctl */
        exit(0);

    int rc = o->child_main(listen_fd, o->arg);
    /* exit, not _exit: flushes stdio and coverage data of the child. */
    exit(rc & 0xff);
}

static pid_t spawn(const struct gh_prefork_opts *o, int listen_fd)
{
    pid_t master = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        plog(o->log, GH_LOG_ERROR, errno, "fork failed");
        return -1;
    }
    if (pid == 0)
        become_child(o, listen_fd, master); /* does not return */
    return pid;
}

static void log_death(const struct gh_prefork_opts *o, pid_t pid, int status, int stopping)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        plog(o->log, stopping ? GH_LOG_INFO : GH_LOG_ERROR, 0, "child %ld killed by signal %d (%s)%s",
             (long)pid, sig, strsignal(sig), stopping ? "" : "; respawning");
    } else if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        plog(o->log, stopping ? GH_LOG_INFO : GH_LOG_WARN, 0, "child %ld exited with status %d%s", (long)pid,
             code, stopping ? "" : "; respawning");
    }
}

struct master {
    const struct gh_prefork_opts *o;
    int listen_fd;
    pid_t *pids; /* one slot per child, 0 = empty */
    int n;
    int64_t deaths[DEATH_WINDOW + 1]; /* ring of death times (mono ms) */
    int n_deaths;
    int64_t next_spawn_ms; /* back-off: no spawn before this */
};

static void note_death(struct master *m)
{
    int64_t now = gh_mono_ms();
    m->deaths[m->n_deaths % (DEATH_WINDOW + 1)] = now;
    m->n_deaths++;
    if (m->n_deaths > DEATH_WINDOW) {
        /* The oldest of the last DEATH_WINDOW + 1 deaths. */
        int64_t oldest = m->deaths[m->n_deaths % (DEATH_WINDOW + 1)];
        if (now - oldest < DEATH_WINDOW_MS && m->next_spawn_ms <= now) {
            m->next_spawn_ms = now + BACKOFF_MS;
            plog(m->o->log, GH_LOG_WARN, 0,
                 "more than %d children died within %d s; waiting %d ms before respawning", DEATH_WINDOW,
                 DEATH_WINDOW_MS / 1000, BACKOFF_MS);
        }
    }
}

/* Reaps every exited child; returns how many. */
static int reap(struct master *m, int stopping)
{
    int reaped = 0;
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        for (int i = 0; i < m->n; i++) {
            if (m->pids[i] == pid) {
                m->pids[i] = 0;
                reaped++;
                log_death(m->o, pid, status, stopping);
                if (!stopping)
                    note_death(m);
                break;
            }
        }
    }
    return reaped;
}

static int live_children(const struct master *m)
{
    int live = 0;
    for (int i = 0; i < m->n; i++)
        live += m->pids[i] > 0;
    return live;
}

static void fill_slots(struct master *m)
{
    if (gh_mono_ms() < m->next_spawn_ms)
        return;
    for (int i = 0; i < m->n; i++) {
        if (m->pids[i] > 0)
            continue;
        pid_t pid = spawn(m->o, m->listen_fd);
        if (pid < 0) {
            m->next_spawn_ms = gh_mono_ms() + BACKOFF_MS; /* fork failed: retry later */
            return;
        }
        m->pids[i] = pid;
    }
}

/* Waits for a signal of set up to timeout_ms. Returns the signal, 0 on
 * timeout. */
static int wait_signal(const sigset_t *set, int64_t timeout_ms)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

static void stop_children(struct master *m, const sigset_t *set)
{
    for (int i = 0; i < m->n; i++)
        if (m->pids[i] > 0)
            kill(m->pids[i], SIGTERM);
    int64_t deadline = gh_mono_ms() + STOP_GRACE_MS;
    reap(m, 1);
    while (live_children(m) > 0) {
        int64_t left = deadline - gh_mono_ms();
        if (left <= 0)
            break;
        wait_signal(set, left > 200 ? 200 : left);
        reap(m, 1);
    }
    for (int i = 0; i < m->n; i++) {
        if (m->pids[i] > 0) {
            plog(m->o->log, GH_LOG_WARN, 0, "child %ld did not stop within %d ms; killing it",
                 (long)m->pids[i], STOP_GRACE_MS);
            kill(m->pids[i], SIGKILL);
            int status;
            waitpid(m->pids[i], &status, 0);
            m->pids[i] = 0;
        }
    }
}

static void noop_handler(int sig)
{
    (void)sig;
}

static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int gh_prefork_run(const struct gh_prefork_opts *opts)
{
    int rc = 1;
    struct master m;
    memset(&m, 0, sizeof(m));
    m.o = opts;
    m.listen_fd = -1;
    int pid_written = 0;
    sigset_t set, old;
    int masked = 0;

    if (!opts || !opts->socket_path || !opts->child_main || opts->children < 1) {
        plog(opts ? opts->log : NULL, GH_LOG_ERROR, 0,
             "socket path, child_main and children >= 1 are required");
        return 1;
    }
    m.n = opts->children;
    m.pids = calloc((size_t)m.n, sizeof(*m.pids));
    if (!m.pids) {
        plog(opts->log, GH_LOG_ERROR, errno, "out of memory");
        goto out;
    }
    raise_nofile_limit();

    /* Signals are blocked before anything is forked so none is lost. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, &old) != 0) {
        plog(opts->log, GH_LOG_ERROR, errno, "sigprocmask");
        goto out;
    }
    masked = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = noop_handler; /* so that SIGCHLD is never discarded as ignored */
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    g_stop = 0;

    m.listen_fd = open_listener(opts);
    if (m.listen_fd < 0)
        goto out;
    if (opts->pid_file && *opts->pid_file) {
        if (write_pid_file(opts) != GH_OK)
            goto out;
        pid_written = 1;
    }
    plog(opts->log, GH_LOG_INFO, 0, "listening on %s with %d children (pid %ld)", opts->socket_path, m.n,
         (long)getpid());

    int stopping = 0;
    fill_slots(&m);
    while (!stopping) {
        int64_t timeout = 1000;
        if (live_children(&m) < m.n) {
            int64_t until = m.next_spawn_ms - gh_mono_ms();
            timeout = until < 0 ? 0 : (until < timeout ? until : timeout);
        }
        int sig = wait_signal(&set, timeout);
        /* Take every pending signal before acting, so a SIGINT that arrived
         * with the SIGCHLD of a child it killed stops instead of respawning. */
        while (sig > 0) {
            if (sig == SIGTERM || sig == SIGINT)
                stopping = 1;
            else if (sig == SIGHUP)
                plog(opts->log, GH_LOG_INFO, 0, "SIGHUP ignored (restart the master to reload)");
            sig = wait_signal(&set, 0);
        }
        reap(&m, stopping);
        if (!stopping)
            fill_slots(&m);
    }
    plog(opts->log, GH_LOG_INFO, 0, "stopping: signalling %d children", live_children(&m));
    stop_children(&m, &set);
    rc = 0;
out:
    if (m.listen_fd >= 0) {
        close(m.listen_fd);
        unlink(opts->socket_path);
    }
    if (pid_written)
        unlink(opts->pid_file);
    if (masked)
        sigprocmask(SIG_SETMASK, &old, NULL);
    free(m.pids);
    if (rc == 0)
        plog(opts->log, GH_LOG_INFO, 0, "stopped");
    return rc;
}
