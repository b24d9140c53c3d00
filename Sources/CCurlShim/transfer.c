// One easy handle and the exchange it performs. See include/CCurlShim.h for ownership. libcurl is
// called through ccurl_libcurl (shim_private.h): a transfer exists only once it is loaded.
#include "CCurlShim.h"
#include "shim_private.h"

#include <stdlib.h>
#include <string.h>

// Response headers of one answer are small; this only stops a misbehaving server.
#define CCURL_MAX_HEADER_BYTES ((size_t)1 << 20)

ccurl_transfer *ccurl_transfer_create(size_t max_body_bytes) {
    // Loads libcurl if nobody has yet; without it there is no handle to make.
    if (ccurl_global_init(NULL) != CURLE_OK) return NULL;
    ccurl_transfer *transfer = calloc(1, sizeof(*transfer));
    if (transfer == NULL) return NULL;
    transfer->easy = ccurl_libcurl.easy_init();
    if (transfer->easy == NULL) {
        free(transfer);
        return NULL;
    }
    ccurl_buffer_init(&transfer->body, max_body_bytes);
    ccurl_buffer_init(&transfer->header_block, CCURL_MAX_HEADER_BYTES);
    atomic_init(&transfer->cancelled, 0);
    return transfer;
}

void ccurl_transfer_destroy(ccurl_transfer *transfer) {
    if (transfer == NULL) return;
    ccurl_libcurl.easy_cleanup(transfer->easy);
    ccurl_libcurl.slist_free_all(transfer->headers);
    ccurl_buffer_free(&transfer->body);
    ccurl_buffer_free(&transfer->header_block);
    free(transfer);
}

void ccurl_transfer_reset(ccurl_transfer *transfer) {
    ccurl_libcurl.easy_reset(transfer->easy);
    ccurl_libcurl.slist_free_all(transfer->headers);
    transfer->headers = NULL;
    ccurl_buffer_clear(&transfer->body);
    ccurl_buffer_clear(&transfer->header_block);
    transfer->error[0] = 0;
    atomic_store(&transfer->cancelled, 0);
    transfer->stream = NULL;
    transfer->stream_context = NULL;
}

void ccurl_transfer_set_stream(ccurl_transfer *transfer, ccurl_stream_callback callback, void *context) {
    transfer->stream = callback;
    transfer->stream_context = context;
}

static size_t ccurl_transfer_write_stream(char *bytes, size_t size, size_t count, void *context) {
    ccurl_transfer *transfer = (ccurl_transfer *)context;
    size_t length = size * count;
    // A short return (0 for a non-empty piece) makes libcurl fail the transfer.
    return transfer->stream(transfer->stream_context, (const uint8_t *)bytes, length) == 0 ? length : 0;
}

CURLcode ccurl_transfer_setopt_long(ccurl_transfer *transfer, CURLoption option, long value) {
    return ccurl_libcurl.easy_setopt(transfer->easy, option, value);
}

CURLcode ccurl_transfer_setopt_string(ccurl_transfer *transfer, CURLoption option, const char *value) {
    return ccurl_libcurl.easy_setopt(transfer->easy, option, value);
}

CURLcode ccurl_transfer_set_body(ccurl_transfer *transfer, const uint8_t *bytes, size_t length) {
    // The size must be set before COPYPOSTFIELDS, or libcurl copies up to the first NUL only.
    CURLcode result = ccurl_libcurl.easy_setopt(transfer->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)length);
    if (result != CURLE_OK) return result;
    static const char empty[1] = {0};
    return ccurl_libcurl.easy_setopt(transfer->easy, CURLOPT_COPYPOSTFIELDS, length ? (const char *)bytes : empty);
}

CURLcode ccurl_transfer_append_header(ccurl_transfer *transfer, const char *line) {
    struct curl_slist *headers = ccurl_libcurl.slist_append(transfer->headers, line);
    if (headers == NULL) return CURLE_OUT_OF_MEMORY;
    transfer->headers = headers;
    return CURLE_OK;
}

static int ccurl_transfer_progress(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                                   curl_off_t ulnow) {
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    ccurl_transfer *transfer = (ccurl_transfer *)context;
    // Non-zero aborts the transfer with CURLE_ABORTED_BY_CALLBACK.
    return atomic_load(&transfer->cancelled);
}

CURLcode ccurl_transfer_perform(ccurl_transfer *transfer) {
    CURL *easy = transfer->easy;
    ccurl_buffer_clear(&transfer->body);
    ccurl_buffer_clear(&transfer->header_block);
    transfer->error[0] = 0;
    CURLcode result = CURLE_OK;
#define CCURL_SET(option, value)                                                                                      \
    do {                                                                                                              \
        result = ccurl_libcurl.easy_setopt(easy, option, value);                                                      \
        if (result != CURLE_OK) return result;                                                                        \
    } while (0)
    CCURL_SET(CURLOPT_ERRORBUFFER, transfer->error);
    if (transfer->stream != NULL) {
        CCURL_SET(CURLOPT_WRITEFUNCTION, ccurl_transfer_write_stream);
        CCURL_SET(CURLOPT_WRITEDATA, (void *)transfer);
    } else {
        CCURL_SET(CURLOPT_WRITEFUNCTION, ccurl_buffer_write_body);
        CCURL_SET(CURLOPT_WRITEDATA, (void *)&transfer->body);
    }
    CCURL_SET(CURLOPT_HEADERFUNCTION, ccurl_buffer_write_header);
    CCURL_SET(CURLOPT_HEADERDATA, (void *)&transfer->header_block);
    CCURL_SET(CURLOPT_XFERINFOFUNCTION, ccurl_transfer_progress);
    CCURL_SET(CURLOPT_XFERINFODATA, (void *)transfer);
    CCURL_SET(CURLOPT_NOPROGRESS, 0L);
    CCURL_SET(CURLOPT_HTTPHEADER, transfer->headers);
#undef CCURL_SET
    result = ccurl_libcurl.easy_perform(easy);
    // Keep both blocks readable as C strings for the accessors; failures here only lose the
    // terminator, which the accessors do not rely on (they return lengths).
    (void)ccurl_buffer_terminate(&transfer->body);
    (void)ccurl_buffer_terminate(&transfer->header_block);
    // libcurl must not keep pointers into this transfer between performs.
    ccurl_libcurl.easy_setopt(easy, CURLOPT_ERRORBUFFER, (char *)NULL);
    return result;
}

void ccurl_transfer_cancel(ccurl_transfer *transfer) { atomic_store(&transfer->cancelled, 1); }

long ccurl_transfer_status(ccurl_transfer *transfer) {
    long status = 0;
    if (ccurl_libcurl.easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) return 0;
    return status;
}

const uint8_t *ccurl_transfer_body(ccurl_transfer *transfer, size_t *length) {
    static const uint8_t empty[1] = {0};
    *length = transfer->body.length;
    return transfer->body.data ? transfer->body.data : empty;
}

const char *ccurl_transfer_headers(ccurl_transfer *transfer, size_t *length) {
    *length = transfer->header_block.length;
    return transfer->header_block.data ? (const char *)transfer->header_block.data : "";
}

int ccurl_transfer_body_overflowed(ccurl_transfer *transfer) { return transfer->body.overflowed; }

const char *ccurl_transfer_error(ccurl_transfer *transfer) {
    // The error buffer is detached after perform, but its contents stay ours to read.
    return transfer->error;
}
