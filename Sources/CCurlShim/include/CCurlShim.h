// A narrow shim over libcurl's easy interface (Debian libcurl4-openssl-dev, libcurl >= 7.85).
//
// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call, so this header
// offers one typed function per option kind the transport uses, plus a `ccurl_transfer`: one
// easy handle together with the request headers and the response it collects. Every symbol of
// ours starts with `ccurl_`.
//
// libcurl is NOT linked: ccurl_global_init loads CCURL_LIBRARY_NAME with dlopen on first use and
// the shim calls it through function pointers, so a process that never makes an HTTP request
// (the node plugin) never maps libcurl and its dependencies. <curl/curl.h> still provides the
// types and constants (CURLcode, CURLOPT_*), but Swift must not call any curl_* function it
// declares: there is nothing to link them against. Use the ccurl_* functions below.
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

/// The library ccurl_global_init loads: libcurl's soname on Debian (package libcurl4).
#define CCURL_LIBRARY_NAME "libcurl.so.4"

/// Once per process, whoever calls first: loads CCURL_LIBRARY_NAME (dlopen, RTLD_NOW |
/// RTLD_LOCAL), resolves every libcurl function the shim uses, then runs
/// curl_global_init(CURL_GLOBAL_DEFAULT) (not thread-safe in libcurl itself, hence pthread_once).
/// Every call returns the outcome of that one attempt: CURLE_OK; CURLE_FAILED_INIT when the
/// library or one of its functions could not be loaded; or curl_global_init's own error. When
/// `message` is not NULL it receives a sentence saying what failed and what to do ("libcurl.so.4
/// could not be loaded (<dlerror>): install libcurl4 (...)"), or "" on success: BORROWED, static,
/// valid for the process's lifetime. ccurl_transfer_create calls this itself; call it earlier to
/// learn why transfers cannot be made.
CURLcode ccurl_global_init(const char **message);

/// curl_easy_strerror(code) from the loaded library; "libcurl is not loaded" when loading failed.
/// Never NULL; BORROWED, static.
const char *ccurl_strerror(CURLcode code);

/// For tests and diagnostics: loads `name` and resolves every function the shim needs exactly as
/// ccurl_global_init does, into a throwaway table (never the shim's own, and no curl_global_init).
/// Returns 0 when that worked (the library then stays loaded); -1 otherwise, with the sentence
/// ccurl_global_init would give in `message` (`size` bytes, NUL-terminated when size > 0).
int ccurl_library_probe(const char *name, char *message, size_t size);

/// One easy handle plus the state of one exchange: request header list, response status line's
/// headers and body, libcurl's error text, and a cancel flag.
typedef struct ccurl_transfer ccurl_transfer;

/// A new transfer whose response body may grow to at most `max_body_bytes` (a larger body fails
/// the transfer with CURLE_WRITE_ERROR and ccurl_transfer_body_overflowed returns 1). Returns an
/// OWNED pointer, or NULL when ccurl_global_init fails, or memory or libcurl's handle allocation
/// does.
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

/// Receives the response body as it arrives, one piece at a time, on the thread running
/// ccurl_transfer_perform. `bytes` is BORROWED for the call only. Returns 0 to go on; anything
/// else stops the transfer (ccurl_transfer_perform then returns CURLE_WRITE_ERROR).
typedef int (*ccurl_stream_callback)(void *context, const uint8_t *bytes, size_t length);

/// Sends the body of the next perform to `callback` instead of collecting it (for streamed
/// answers such as a Kubernetes watch): ccurl_transfer_body is then empty. `context` is BORROWED
/// and passed back to every call; it must stay valid until the perform returns. NULL turns
/// streaming off; ccurl_transfer_reset does too.
void ccurl_transfer_set_stream(ccurl_transfer *transfer, ccurl_stream_callback callback, void *context);

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
