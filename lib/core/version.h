#ifndef GH_CORE_VERSION_H
#define GH_CORE_VERSION_H
#ifndef GH_VERSION
#define GH_VERSION "0.1.0"
#endif
#define GH_PROJECT_URL "https://github.com/guildhall/guildhall"
#endif
