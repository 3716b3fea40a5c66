/* err.c - messages and names for the error enum.
 *
 * Both functions are a switch generated from the GH_ERRORS X-macro, with no
 * default label: -Wswitch then flags an enum value without a case, and
 * values outside the enum fall through to the line after the switch. */
#include "core/err.h"

const char *gh_strerror(int err)
{
    switch ((enum gh_err)err) {
#define GH_ERR_MSG(name, value, msg)                                                                         \
    case name:                                                                                               \
        return msg;
        GH_ERRORS(GH_ERR_MSG)
#undef GH_ERR_MSG
    }
    return "unknown error";
}

const char *gh_errname(int err)
{
    switch ((enum gh_err)err) {
#define GH_ERR_NAME(name, value, msg)                                                                        \
    case name:                                                                                               \
        return #name;
        GH_ERRORS(GH_ERR_NAME)
#undef GH_ERR_NAME
    }
    return "GH_EUNKNOWN";
}
