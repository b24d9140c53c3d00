// Process-wide libcurl initialisation, exactly once.
#include "CCurlShim.h"

#include <pthread.h>

static pthread_once_t ccurl_global_once = PTHREAD_ONCE_INIT;
static CURLcode ccurl_global_result = CURLE_FAILED_INIT;

static void ccurl_global_run(void) {
    // curl_global_init is not thread-safe and must run before any other thread uses libcurl;
    // pthread_once gives both guarantees to every caller at once.
    ccurl_global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

CURLcode ccurl_global_init(void) {
    pthread_once(&ccurl_global_once, ccurl_global_run);
    return ccurl_global_result;
}
