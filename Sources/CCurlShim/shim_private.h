// Internal to CCurlShim: the growable byte buffer that collects a response, and the transfer
// struct. Ownership is as in include/CCurlShim.h; inside the shim:
//  - a ccurl_buffer OWNS `data` (malloc'd, freed by ccurl_buffer_free);
//  - a ccurl_transfer OWNS `easy`, `headers` (the request's curl_slist) and both buffers; libcurl
//    holds BORROWED pointers to the buffers and to `error` only while a perform runs.
#ifndef CCURLSHIM_PRIVATE_H
#define CCURLSHIM_PRIVATE_H

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

struct ccurl_transfer {
    CURL *easy;
    struct curl_slist *headers;
    ccurl_buffer body;
    ccurl_buffer header_block;
    char error[CURL_ERROR_SIZE];
    atomic_int cancelled;
};

#endif
