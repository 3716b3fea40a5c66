/* prefork.h - the FastCGI prefork master every fcgi binary runs.
 *
 * The master binds the unix socket (mode 0666, backlog from config), forks
 * the children, and respawns any child that exits or crashes (with a short
 * backoff if children die in a loop). SIGTERM/SIGINT: stop children, unlink
 * the socket, exit. Each child calls child_main with the listening fd. */
#ifndef GH_WEB_PREFORK_H
#define GH_WEB_PREFORK_H

struct gh_logger;

typedef int (*gh_child_main_fn)(int listen_fd, void *arg);

struct gh_prefork_opts {
    const char *socket_path;
    int backlog;
    int children;
    gh_child_main_fn child_main;
    void *arg;
    const struct gh_logger *log;
    const char *pid_file; /* written by the master, or NULL */
};

/* Children = requested, or when 0: 2 x cores, clamped so that children do
 * not exceed pg_pool_max and are at least min(pg_pool_min, 2 x cores). */
int gh_prefork_size(int requested, int pg_pool_min, int pg_pool_max);
/* Runs until SIGTERM. Returns 0 on clean exit, non-zero on setup failure. */
int gh_prefork_run(const struct gh_prefork_opts *opts);
/* In a child: 1 once the master asked to stop. */
int gh_prefork_stopping(void);

#endif
