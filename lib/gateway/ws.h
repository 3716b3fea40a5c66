/* ws.h - one WebSocket client connection (RFC 6455) over TCP or TLS
 * (OpenSSL), non-blocking, for gateway-lite.
 *
 * The connection is a state machine driven by poll(): TCP connect -> TLS
 * handshake (wss://) -> HTTP/1.1 Upgrade (Sec-WebSocket-Key checked against
 * Sec-WebSocket-Accept) -> open. Outgoing frames are masked with a fresh
 * random key; incoming fragments are reassembled; pings are answered with
 * pongs; a close frame is answered and ends the connection. With zlib_stream,
 * binary messages are Discord's zlib-stream transport: one inflate context
 * for the whole connection, data buffered until it ends with 00 00 ff ff,
 * then inflated (shared/reference/discord-protocol.md, "Compression").
 *
 * One gh_ws belongs to one thread. Nothing here blocks except DNS resolution
 * in gh_ws_connect (getaddrinfo). Writes never raise SIGPIPE (MSG_NOSIGNAL,
 * also under TLS).
 *
 * Implementation: lib/gateway/ws.c on top of the pure codecs
 * lib/gateway/wsframe.h (frames) and lib/gateway/zstream.h (zlib-stream). */
#ifndef GH_GATEWAY_WS_H
#define GH_GATEWAY_WS_H

#include <stddef.h>
#include <stdint.h>

struct gh_ws;

enum gh_ws_state {
    GH_WS_CONNECTING, /* TCP connect in progress */
    GH_WS_TLS,        /* TLS handshake */
    GH_WS_UPGRADE,    /* HTTP Upgrade sent, waiting for 101 */
    GH_WS_OPEN,
    GH_WS_CLOSING, /* we sent a close frame, waiting for the peer's */
    GH_WS_CLOSED,
};

struct gh_ws_opts {
    int zlib_stream;        /* binary messages are zlib-stream (inflate them) */
    size_t max_message;     /* largest message (after inflate) accepted; 0 = 16 MiB */
    int connect_timeout_ms; /* connect + TLS + upgrade; 0 = 10000 */
    const char *ca_file;    /* NULL = the system's trust store */
    int insecure;           /* tests only: do not verify the certificate */
    const char *user_agent; /* NULL = "guildhall-gateway" */
};

/* url: ws://host[:port]/path?query or wss://... Starts a non-blocking
 * connect. NULL on a bad URL, a failed resolve or no memory (err says which).
 * Every later failure, an immediate "connection refused" included, comes out
 * of gh_ws_service. opts may be NULL (defaults); its strings are copied.
 * Caller frees with gh_ws_free. */
struct gh_ws *gh_ws_connect(const char *url, const struct gh_ws_opts *opts, char *err, size_t errlen);
/* Accepts NULL. Closes the socket at once, without a close frame (what a
 * crash or a dropped link looks like to the peer). */
void gh_ws_free(struct gh_ws *ws);

/* For poll(); -1 once closed. Read it again before each poll(): while
 * CONNECTING it changes when the next resolved address is tried. */
int gh_ws_fd(const struct gh_ws *ws);
short gh_ws_events(const struct gh_ws *ws); /* POLLIN, plus POLLOUT while connecting or writes are pending */
enum gh_ws_state gh_ws_state(const struct gh_ws *ws);

/* A complete message (reassembled; inflated when zlib_stream; text frames
 * are delivered as they are even with zlib_stream). data is valid during the
 * call only and NUL-terminated (len excludes the NUL). It may point into the
 * read buffer: do not keep it. */
typedef void (*gh_ws_msg_fn)(void *arg, const char *data, size_t len);

/* Drives the connection: call it when poll() reported revents on the fd, and
 * on timers (revents 0) so connect timeouts fire. Advances the handshake,
 * flushes pending writes, reads everything available and calls on_msg for
 * each complete message (any number per call). Returns GH_OK while the
 * connection lives, or a negative gh_err once it is closed (GH_EIO,
 * GH_ETIMEOUT, GH_ETOOBIG, GH_EHTTP for a refused upgrade...):
 * gh_ws_get_close_info says why. A clean close (ours or the peer's, close
 * frames exchanged) also ends with GH_EIO, with close info error "".
 * Once closed, every call returns the same code. on_msg may call
 * gh_ws_send_text/gh_ws_close, never gh_ws_free. Protocol errors by the peer
 * (masked or reserved-bit frames, bad fragments, control frames over 125
 * bytes) send close 1002, a message over max_message close 1009 (GH_ETOOBIG),
 * corrupt zlib data close 1007. */
int gh_ws_service(struct gh_ws *ws, short revents, gh_ws_msg_fn on_msg, void *arg);

/* Queues one text message (a single masked frame). Sent as soon as the
 * socket takes it (gh_ws_service flushes the rest). GH_OK, GH_EIO when not
 * open, GH_ENOMEM. */
int gh_ws_send_text(struct gh_ws *ws, const char *data, size_t len);
/* Sends a close frame (code, reason <= 123 bytes, longer is cut) and waits
 * for the peer's: state CLOSING, then CLOSED when it arrives (gh_ws_service
 * returns GH_EIO) or after 2 s (GH_ETIMEOUT; keep calling gh_ws_service on
 * timers). Messages arriving meanwhile are still delivered. Before the
 * WebSocket is open it closes the socket at once. GH_OK (also when already
 * closing or closed), GH_EINVAL for NULL, GH_ENOMEM. */
int gh_ws_close(struct gh_ws *ws, int code, const char *reason);

struct gh_ws_close_info {
    int code;         /* the close code the peer sent, 0 when none (TCP drop, error) */
    char reason[124]; /* its reason text */
    int by_peer;      /* 1 when the peer closed first (close frame or TCP drop) */
    char error[256];  /* transport/protocol error, "" when a clean close */
};
void gh_ws_get_close_info(const struct gh_ws *ws, struct gh_ws_close_info *out);

/* Bytes read from the socket (compressed; decrypted under TLS) and messages
 * delivered. */
void gh_ws_counters(const struct gh_ws *ws, uint64_t *bytes_in, uint64_t *messages_in);

#endif
