// A narrow shim over libcurl's easy interface (Debian libcurl4-openssl-dev, libcurl >= 7.85).
//
// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call, so this header
// offers one typed function per option kind the transport uses, plus a `ccurl_transfer`: one
// easy handle together with the request headers and the response it collects. Every symbol of
// ours starts with `ccurl_`; the curl_* functions Swift sees come from <curl/curl.h> itself.
//
// Ownership (who frees what):
//  - ccurl_transfer_create returns an OWNED transfer; the caller frees it with
//    ccurl_transfer_destroy exactly once. A transfer is not thread-safe: one thread at a time
//    (it may move between threads between calls).
//  - Every `const char *` / `const uint8_t *` argument is BORROWED for the duration of the call
//    only: the shim (or libcurl) copies what it keeps. Callers may free them on return.
//  - Every pointer returned by a ccurl_transfer_* accessor is BORROWED from the transfer: valid
//    until the next ccurl_transfer_reset, ccurl_transfer_perform or ccurl_transfer_destroy on it.
//    Copy what you need before then.
//  - The CURL * behind a transfer is never exposed: options go through the typed setters below so
//    the transfer can keep its callbacks and header list consistent.
#ifndef CCURLSHIM_H
#define CCURLSHIM_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Runs curl_global_init(CURL_GLOBAL_DEFAULT) once per process, whoever calls first (it is not
/// thread-safe in libcurl itself, so this wraps it in pthread_once). Returns the result of that
/// one call on every call. Call it before ccurl_transfer_create.
CURLcode ccurl_global_init(void);

/// One easy handle plus the state of one exchange: request header list, response status line's
/// headers and body, libcurl's error text, and a cancel flag.
typedef struct ccurl_transfer ccurl_transfer;

/// A new transfer whose response body may grow to at most `max_body_bytes` (a larger body fails
/// the transfer with CURLE_WRITE_ERROR and ccurl_transfer_body_overflowed returns 1). Returns an
/// OWNED pointer, or NULL when memory or libcurl's handle allocation fails.
ccurl_transfer *ccurl_transfer_create(size_t max_body_bytes);

/// Frees the transfer, its easy handle (closing any cached connection), its header list and
/// its buffers. `transfer` may be NULL. The pointer is invalid afterwards.
void ccurl_transfer_destroy(ccurl_transfer *transfer);

/// Prepares the transfer for a new request: resets every option (curl_easy_reset, which keeps
/// the handle's connection, DNS and TLS session caches), drops the request headers and the last
/// response, and clears the cancel flag. Invalidates pointers returned by earlier accessors.
void ccurl_transfer_reset(ccurl_transfer *transfer);

/// Sets a `long` option (CURLOPT_TIMEOUT_MS, CURLOPT_NOSIGNAL, CURLOPT_SSL_VERIFYPEER, ...).
/// Returns libcurl's result.
CURLcode ccurl_transfer_setopt_long(ccurl_transfer *transfer, CURLoption option, long value);

/// Sets a string option (CURLOPT_URL, CURLOPT_CUSTOMREQUEST, CURLOPT_CAINFO, ...). `value` is
/// BORROWED: libcurl copies string options (since 7.17). NULL restores the option's default.
CURLcode ccurl_transfer_setopt_string(ccurl_transfer *transfer, CURLoption option, const char *value);

/// Sets the request body: CURLOPT_POSTFIELDSIZE_LARGE then CURLOPT_COPYPOSTFIELDS, so libcurl
/// keeps its own copy. `bytes` is BORROWED; it may be NULL when `length` is 0.
CURLcode ccurl_transfer_set_body(ccurl_transfer *transfer, const uint8_t *bytes, size_t length);

/// Appends one request header line ("Name: value"). `line` is BORROWED (copied). The header
/// list is installed by ccurl_transfer_perform. Returns CURLE_OK or CURLE_OUT_OF_MEMORY.
CURLcode ccurl_transfer_append_header(ccurl_transfer *transfer, const char *line);

/// Performs the transfer: BLOCKS the calling thread until the exchange ends or times out. Never
/// call it from a thread you cannot spare (in Swift: never on the cooperative pool). Installs
/// the header list and the collecting callbacks, so call it after all setters.
CURLcode ccurl_transfer_perform(ccurl_transfer *transfer);

/// Asks a running ccurl_transfer_perform to stop soon (it then returns
/// CURLE_ABORTED_BY_CALLBACK). Safe to call from any thread, at any time, any number of times.
void ccurl_transfer_cancel(ccurl_transfer *transfer);

/// The HTTP status of the last response (CURLINFO_RESPONSE_CODE), 0 if none arrived.
long ccurl_transfer_status(ccurl_transfer *transfer);

/// The response body collected by the last perform. BORROWED; `*length` receives its size.
/// Never NULL (an empty body gives a valid pointer and length 0).
const uint8_t *ccurl_transfer_body(ccurl_transfer *transfer, size_t *length);

/// The header block of the final response of the last perform: its lines exactly as received
/// ("Name: value\r\n", the status line first), interim 1xx responses dropped. BORROWED;
/// `*length` receives its size. Never NULL.
const char *ccurl_transfer_headers(ccurl_transfer *transfer, size_t *length);

/// 1 when the last perform failed because the body passed `max_body_bytes`, else 0.
int ccurl_transfer_body_overflowed(ccurl_transfer *transfer);

/// libcurl's detailed error text for the last perform (CURLOPT_ERRORBUFFER), or "" if it gave
/// none. BORROWED, NUL-terminated.
const char *ccurl_transfer_error(ccurl_transfer *transfer);

#ifdef __cplusplus
}
#endif

#endif
