// Internal to CCurlShim: the growable byte buffer that collects a response, and the transfer
// struct. Ownership is as in include/CCurlShim.h; inside the shim:
//  - a ccurl_buffer OWNS `data` (malloc'd, freed by ccurl_buffer_free);
//  - a ccurl_transfer OWNS `easy`, `headers` (the request's curl_slist) and both buffers; libcurl
//    holds BORROWED pointers to the buffers and to `error` only while a perform runs.
#ifndef CCURLSHIM_PRIVATE_H
#define CCURLSHIM_PRIVATE_H

#include "CCurlShim.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ccurl_buffer {
    uint8_t *data;
    size_t length;
    size_t capacity;
    /// Appending past this many bytes fails (and sets `overflowed`).
    size_t limit;
    int overflowed;
} ccurl_buffer;

/// An empty buffer that may grow to `limit` bytes.
void ccurl_buffer_init(ccurl_buffer *buffer, size_t limit);
/// Frees the bytes; the buffer is empty and reusable afterwards.
void ccurl_buffer_free(ccurl_buffer *buffer);
/// Forgets the contents but keeps the allocation.
void ccurl_buffer_clear(ccurl_buffer *buffer);
/// Appends `length` bytes; returns 0 on success, -1 when the limit or memory ran out.
int ccurl_buffer_append(ccurl_buffer *buffer, const void *bytes, size_t length);
/// Keeps a NUL after the contents so the bytes can be read as a C string; returns 0 or -1.
int ccurl_buffer_terminate(ccurl_buffer *buffer);

/// libcurl write callbacks (CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION); `context` is a
/// BORROWED ccurl_buffer *.
size_t ccurl_buffer_write_body(char *bytes, size_t size, size_t count, void *context);
size_t ccurl_buffer_write_header(char *bytes, size_t size, size_t count, void *context);

/// The libcurl functions the shim calls, resolved with dlsym from libcurl.so.4, which is opened
/// with dlopen on first use instead of being linked: a process that never talks to Heketi (the
/// node plugin) never maps libcurl and the ~27 libraries it needs. Each member has exactly the
/// type <curl/curl.h> declares for the function, so a call through it (the variadic
/// curl_easy_setopt/getinfo included) passes the same arguments a linked call would.
typedef struct ccurl_library {
    __typeof__(curl_global_init) *global_init;
    __typeof__(curl_easy_init) *easy_init;
    __typeof__(curl_easy_cleanup) *easy_cleanup;
    __typeof__(curl_easy_reset) *easy_reset;
    __typeof__(curl_easy_setopt) *easy_setopt;
    __typeof__(curl_easy_perform) *easy_perform;
    __typeof__(curl_easy_getinfo) *easy_getinfo;
    __typeof__(curl_easy_strerror) *easy_strerror;
    __typeof__(curl_slist_append) *slist_append;
    __typeof__(curl_slist_free_all) *slist_free_all;
} ccurl_library;

/// The table the shim calls libcurl through. Written once, inside ccurl_global_init's
/// pthread_once; read only after ccurl_global_init returned CURLE_OK (pthread_once orders the
/// write before those reads). Every ccurl_transfer exists only after that, so code that has a
/// transfer may call through it freely.
__attribute__((visibility("hidden"))) extern ccurl_library ccurl_libcurl;

/// Opens `name` with dlopen(RTLD_NOW | RTLD_LOCAL) and resolves every member of `library`.
/// Returns 0 with `library` filled (the library stays loaded for good), or -1 with `library`
/// zeroed and a sentence saying what failed and what to install in `message` (`size` bytes,
/// always NUL-terminated when size > 0). `name` is BORROWED.
int ccurl_library_load(const char *name, ccurl_library *library, char *message, size_t size);

struct ccurl_transfer {
    CURL *easy;
    struct curl_slist *headers;
    ccurl_buffer body;
    ccurl_buffer header_block;
    char error[CURL_ERROR_SIZE];
    atomic_int cancelled;
    /// When set (ccurl_transfer_set_stream), body bytes go to it instead of `body`.
    ccurl_stream_callback stream;
    void *stream_context;
};

#endif
