// Process-wide libcurl set-up, exactly once: load the library, then curl_global_init.
#include "CCurlShim.h"
#include "shim_private.h"

#include <pthread.h>
#include <stdio.h>

static pthread_once_t ccurl_global_once = PTHREAD_ONCE_INIT;
static CURLcode ccurl_global_result = CURLE_FAILED_INIT;
// Why set-up failed; written inside the once routine only, so readers after pthread_once see it
// complete.
static char ccurl_global_message[512] = "libcurl was not initialised";

static void ccurl_global_run(void) {
    // Loading here, not at exec, is the point: only a process that makes an HTTP request pays
    // for libcurl and its dependencies (see ccurl_library in shim_private.h).
    if (ccurl_library_load(CCURL_LIBRARY_NAME, &ccurl_libcurl, ccurl_global_message, sizeof(ccurl_global_message)) !=
        0) {
        ccurl_global_result = CURLE_FAILED_INIT;
        return;
    }
    // curl_global_init is not thread-safe and must run before any other thread uses libcurl;
    // pthread_once gives both guarantees to every caller at once.
    ccurl_global_result = ccurl_libcurl.global_init(CURL_GLOBAL_DEFAULT);
    if (ccurl_global_result != CURLE_OK) {
        snprintf(ccurl_global_message, sizeof(ccurl_global_message), "libcurl failed to initialise: %s",
                 ccurl_libcurl.easy_strerror(ccurl_global_result));
    } else {
        ccurl_global_message[0] = 0;
    }
}

CURLcode ccurl_global_init(const char **message) {
    pthread_once(&ccurl_global_once, ccurl_global_run);
    if (message != NULL) *message = ccurl_global_message;
    return ccurl_global_result;
}

const char *ccurl_strerror(CURLcode code) {
    // Only a loaded library can describe its codes; without one, every failure is the load's.
    if (ccurl_global_init(NULL) != CURLE_OK && ccurl_libcurl.easy_strerror == NULL) return "libcurl is not loaded";
    return ccurl_libcurl.easy_strerror(code);
}
