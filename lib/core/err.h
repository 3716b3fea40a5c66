/* err.h - the one error enum of Guildhall.
 *
 * GH_OK is 0, every failure is negative. Names and messages come from one
 * X-macro so that adding an error adds its message in the same line. */
#ifndef GH_CORE_ERR_H
#define GH_CORE_ERR_H

#define GH_ERRORS(X)                                                                                         \
    X(GH_OK, 0, "ok")                                                                                        \
    X(GH_ENOMEM, -1, "out of memory")                                                                        \
    X(GH_EINVAL, -2, "invalid argument")                                                                     \
    X(GH_ETOOBIG, -3, "too large")                                                                           \
    X(GH_EIO, -4, "input/output error")                                                                      \
    X(GH_ETIMEOUT, -5, "timed out")                                                                          \
    X(GH_ENOTFOUND, -6, "not found")                                                                         \
    X(GH_EPG, -7, "PostgreSQL error")                                                                        \
    X(GH_EREDIS, -8, "Redis error")                                                                          \
    X(GH_EHTTP, -9, "HTTP error")                                                                            \
    X(GH_ERATELIMIT, -10, "rate limited")                                                                    \
    X(GH_EUNAUTHORIZED, -11, "unauthorized")                                                                 \
    X(GH_EFORBIDDEN, -12, "forbidden")                                                                       \
    X(GH_ECONFIG, -13, "configuration error")                                                                \
    X(GH_EJSON, -14, "malformed JSON")                                                                       \
    X(GH_ESIGNATURE, -15, "bad signature")                                                                   \
    X(GH_ESTALE, -16, "timestamp outside the allowed window")                                                \
    X(GH_EDUPLICATE, -17, "duplicate")                                                                       \
    X(GH_EDISABLED, -18, "feature disabled")                                                                 \
    X(GH_EUNAVAILABLE, -19, "service unavailable")                                                           \
    X(GH_ECONFLICT, -20, "conflict")                                                                         \
    X(GH_EEXPIRED, -21, "expired")                                                                           \
    X(GH_EDISCORD, -22, "Discord rejected the request")                                                      \
    X(GH_EPREMIUM, -23, "premium required")

enum gh_err {
#define GH_ERR_ENUM(name, value, msg) name = value,
    GH_ERRORS(GH_ERR_ENUM)
#undef GH_ERR_ENUM
};

/* Static message for an error code; never NULL ("unknown error" for values
 * outside the enum). */
const char *gh_strerror(int err);
/* Symbolic name, e.g. "GH_EPG"; never NULL. */
const char *gh_errname(int err);

#endif
