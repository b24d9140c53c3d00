// libcurl as a library loaded at run time: dlopen, then dlsym of every function the shim calls.
#include "CCurlShim.h"
#include "shim_private.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

// What to tell an operator whose image lacks libcurl (or has something else under its name).
#define CCURL_INSTALL_HINT "install libcurl4 (Debian: apt-get install libcurl4)"

ccurl_library ccurl_libcurl;

// dlerror's text, or a fixed one: it returns NULL when it has nothing to say.
static const char *ccurl_library_dlerror(void) {
    const char *text = dlerror();
    return text ? text : "no reason given";
}

int ccurl_library_load(const char *name, ccurl_library *library, char *message, size_t size) {
    memset(library, 0, sizeof(*library));
    // RTLD_NOW: an incomplete libcurl (or a dependency of it) fails here, with a message, not at
    // the first call through a lazily bound symbol. RTLD_LOCAL: its symbols serve this table only.
    void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        // The hint first: the loader's text can be long, and a cut message must keep what to do.
        snprintf(message, size, "%s could not be loaded; %s (%s)", name, CCURL_INSTALL_HINT, ccurl_library_dlerror());
        return -1;
    }
    ccurl_library found;
    // Each member gets the type <curl/curl.h> declares for its function (see shim_private.h), so
    // every call through the table passes exactly the arguments a linked call would.
#define CCURL_RESOLVE(member, symbol)                                                                                 \
    do {                                                                                                              \
        (void)dlerror();                                                                                              \
        found.member = (__typeof__(found.member))dlsym(handle, #symbol);                                              \
        if (found.member == NULL) {                                                                                   \
            snprintf(message, size, "%s has no %s; %s (%s)", name, #symbol, CCURL_INSTALL_HINT,                       \
                     ccurl_library_dlerror());                                                                        \
            dlclose(handle);                                                                                          \
            return -1;                                                                                                \
        }                                                                                                             \
    } while (0)
    CCURL_RESOLVE(global_init, curl_global_init);
    CCURL_RESOLVE(easy_init, curl_easy_init);
    CCURL_RESOLVE(easy_cleanup, curl_easy_cleanup);
    CCURL_RESOLVE(easy_reset, curl_easy_reset);
    CCURL_RESOLVE(easy_setopt, curl_easy_setopt);
    CCURL_RESOLVE(easy_perform, curl_easy_perform);
    CCURL_RESOLVE(easy_getinfo, curl_easy_getinfo);
    CCURL_RESOLVE(easy_strerror, curl_easy_strerror);
    CCURL_RESOLVE(slist_append, curl_slist_append);
    CCURL_RESOLVE(slist_free_all, curl_slist_free_all);
#undef CCURL_RESOLVE
    // The handle is never closed: the table points into the library for the process's lifetime
    // (and neither libcurl nor OpenSSL supports being unloaded after initialisation).
    *library = found;
    if (size > 0) message[0] = 0;
    return 0;
}

int ccurl_library_probe(const char *name, char *message, size_t size) {
    ccurl_library scratch;
    return ccurl_library_load(name, &scratch, message, size);
}
