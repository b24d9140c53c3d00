// The floor of bench/controller-heketi: the least any CSI controller can add on top of Heketi.
//
//   BENCH_HEKETI_KEY=... controller_floor unix:/path.sock http://127.0.0.1:PORT
//
// A C-only gRPC server over the driver's shim (Sources/CGRPCShim) that answers CreateVolume and
// DeleteVolume by sending the Heketi requests of bench/lib/heketi_direct.py from C: one kept-alive
// libcurl handle, a fresh HS256 JWT per request (OpenSSL), the queue polled again at once. It runs
// each call inline on the completion-queue thread (no hand-off to another thread), checks nothing,
// logs nothing and keeps no index, so it is not a driver: only what the benchmark's 1-thread ratio
// would be for a controller that cost nothing but the gRPC round trips and the HTTP exchanges.
// Calls are served one at a time (the queue thread blocks in libcurl), so only the 1-thread phase
// uses it. Anything else, or a Heketi answer it does not expect, is answered with INTERNAL.
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CGRPCShim.h"

enum { STATUS_OK = 0, STATUS_INTERNAL = 13 };
enum { OPERATION_POLLS = 100000 };  // bounds every queue loop

typedef struct {
    char *data;
    size_t length, capacity;
} buffer;

static CURL *easy;
static const char *base_url;
static const char *key;
static buffer body, location, pending;
static unsigned gid = 2000;

static void buffer_append(buffer *b, const char *bytes, size_t length) {
    if (b->length + length + 1 > b->capacity) {
        b->capacity = (b->length + length + 1) * 2;
        b->data = realloc(b->data, b->capacity);
        if (b->data == NULL) abort();
    }
    memcpy(b->data + b->length, bytes, length);
    b->length += length;
    b->data[b->length] = 0;
}

static void buffer_clear(buffer *b) {
    b->length = 0;
    if (b->data) b->data[0] = 0;
}

static const char *buffer_text(const buffer *b) { return b->data ? b->data : ""; }

static size_t on_body(char *bytes, size_t size, size_t count, void *context) {
    (void)context;
    buffer_append(&body, bytes, size * count);
    return size * count;
}

static void header_value(buffer *into, const char *line, size_t length, const char *name) {
    size_t name_length = strlen(name);
    if (length <= name_length || strncasecmp(line, name, name_length) != 0) return;
    const char *value = line + name_length;
    size_t value_length = length - name_length;
    while (value_length > 0 && (*value == ' ')) value++, value_length--;
    while (value_length > 0 && (value[value_length - 1] == '\r' || value[value_length - 1] == '\n')) value_length--;
    buffer_clear(into);
    buffer_append(into, value, value_length);
}

static size_t on_header(char *line, size_t size, size_t count, void *context) {
    (void)context;
    header_value(&location, line, size * count, "Location:");
    header_value(&pending, line, size * count, "X-Pending:");
    return size * count;
}

static void base64url(const unsigned char *in, size_t length, buffer *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char chunk[4];
    for (size_t i = 0; i < length; i += 3) {
        unsigned value = (unsigned)in[i] << 16;
        if (i + 1 < length) value |= (unsigned)in[i + 1] << 8;
        if (i + 2 < length) value |= in[i + 2];
        size_t emit = length - i >= 3 ? 4 : length - i + 1;
        for (size_t k = 0; k < 4; k++) chunk[k] = alphabet[(value >> (18 - 6 * k)) & 63];
        buffer_append(out, chunk, emit);
    }
}

// "Authorization: Bearer <HS256 JWT with iss, iat, exp and qsh = sha256(METHOD&PATH)>"
static void authorization(const char *method, const char *path, buffer *out) {
    char text[2048];
    unsigned char digest[SHA256_DIGEST_LENGTH];
    snprintf(text, sizeof text, "%s&%s", method, path);
    SHA256((const unsigned char *)text, strlen(text), digest);
    char qsh[2 * SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) sprintf(qsh + 2 * i, "%02x", digest[i]);
    long now = (long)time(NULL);
    int claims_length = snprintf(text, sizeof text, "{\"iss\":\"admin\",\"iat\":%ld,\"exp\":%ld,\"qsh\":\"%s\"}", now,
                                 now + 60, qsh);
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    buffer token = {0};
    base64url((const unsigned char *)header, sizeof header - 1, &token);
    buffer_append(&token, ".", 1);
    base64url((const unsigned char *)text, (size_t)claims_length, &token);
    unsigned char signature[EVP_MAX_MD_SIZE];
    unsigned signature_length = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)token.data, token.length, signature,
         &signature_length);
    buffer_append(&token, ".", 1);
    base64url(signature, signature_length, &token);
    buffer_clear(out);
    buffer_append(out, "Authorization: Bearer ", 22);
    buffer_append(out, token.data, token.length);
    free(token.data);
}

// One exchange on the kept-alive handle. Returns the HTTP status, 0 on a transport error.
static long exchange(const char *method, const char *path, const char *json) {
    char url[1024];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    buffer auth = {0};
    authorization(method, path, &auth);
    struct curl_slist *headers = curl_slist_append(NULL, auth.data);
    headers = curl_slist_append(headers, "Accept: application/json");
    if (json) headers = curl_slist_append(headers, "Content-Type: application/json");
    // An answer without a body or one of the headers must not show the previous answer's.
    buffer_clear(&body);
    buffer_clear(&location);
    buffer_clear(&pending);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else if (json) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    } else {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode result = curl_easy_perform(easy);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);
    curl_slist_free_all(headers);
    free(auth.data);
    long status = 0;
    if (result == CURLE_OK) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

// Polls the queue at `location` until `done` (303 or 204); 0 on anything else.
static int finish(long done) {
    char queue[1024];
    if (location.length == 0) return 0;
    snprintf(queue, sizeof queue, "%s", location.data);
    for (int poll = 0; poll < OPERATION_POLLS; poll++) {
        long status = exchange("GET", queue, NULL);
        if (status == 200 && strcmp(buffer_text(&pending), "true") == 0) continue;
        return status == done;
    }
    return 0;
}

// Reads a varint at message[*i]; 0 when it is cut off or longer than 10 bytes.
static int varint(const uint8_t *message, size_t length, size_t *i, uint64_t *value) {
    *value = 0;
    for (int shift = 0; shift < 70 && *i < length; shift += 7) {
        uint8_t byte = message[(*i)++];
        *value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) return 1;
    }
    return 0;
}

// A length-delimited protobuf field `number` at the top level of `message`; NULL when absent or
// when the message is malformed.
static const uint8_t *field(const uint8_t *message, size_t length, unsigned number, size_t *field_length) {
    size_t i = 0;
    while (i < length) {
        uint64_t tag, value;
        if (!varint(message, length, &i, &tag)) return NULL;
        switch (tag & 7) {
            case 0:
                if (!varint(message, length, &i, &value)) return NULL;
                break;
            case 2:
                if (!varint(message, length, &i, &value) || value > length - i) return NULL;
                if ((tag >> 3) == number) {
                    *field_length = (size_t)value;
                    return message + i;
                }
                i += (size_t)value;
                break;
            default:
                return NULL;
        }
    }
    return NULL;
}

static void fail(cgrpc_call *call, const char *why) { cgrpc_call_respond(call, STATUS_INTERNAL, why, strlen(why), NULL, 0); }

static void create_volume(cgrpc_call *call, const uint8_t *request, size_t length) {
    size_t name_length = 0;
    const uint8_t *name = field(request, length, 1, &name_length);
    if (name == NULL || name_length > 200) return fail(call, "no name");
    char json[512];
    snprintf(json, sizeof json,
             "{\"durability\":{\"replicate\":{\"replica\":3},\"type\":\"replicate\"},\"gid\":%u,\"name\":\"%.*s\","
             "\"size\":1}",
             gid++, (int)name_length, (const char *)name);
    if (exchange("POST", "/volumes", json) != 202 || !finish(303)) return fail(call, "create failed");
    char volume_path[1024];
    if (location.length == 0) return fail(call, "no Location");
    snprintf(volume_path, sizeof volume_path, "%s", location.data);
    if (exchange("GET", volume_path, NULL) != 200) return fail(call, "volume read failed");
    const char *id = strstr(buffer_text(&body), "\"id\":\"");
    if (id == NULL) return fail(call, "no id");
    id += 6;
    size_t id_length = strcspn(id, "\"");
    if (id_length > 100) return fail(call, "bad id");
    // CreateVolumeResponse{volume: Volume{capacity_bytes: 1 GiB, volume_id: id}}
    uint8_t volume[128], response[140];
    size_t v = 0;
    volume[v++] = 0x08;  // capacity_bytes = 1 << 30, varint
    volume[v++] = 0x80, volume[v++] = 0x80, volume[v++] = 0x80, volume[v++] = 0x80, volume[v++] = 0x04;
    volume[v++] = 0x12, volume[v++] = (uint8_t)id_length;
    memcpy(volume + v, id, id_length), v += id_length;
    size_t r = 0;
    response[r++] = 0x0a, response[r++] = (uint8_t)v;
    memcpy(response + r, volume, v), r += v;
    cgrpc_call_respond(call, STATUS_OK, NULL, 0, response, r);
}

static void delete_volume(cgrpc_call *call, const uint8_t *request, size_t length) {
    size_t id_length = 0;
    const uint8_t *id = field(request, length, 1, &id_length);
    if (id == NULL || id_length > 100) return fail(call, "no volume_id");
    char path[160];
    snprintf(path, sizeof path, "/volumes/%.*s", (int)id_length, (const char *)id);
    if (exchange("DELETE", path, NULL) != 202 || !finish(204)) return fail(call, "delete failed");
    cgrpc_call_respond(call, STATUS_OK, NULL, 0, NULL, 0);
}

static int method_is(const char *method, size_t length, const char *name) {
    return length == strlen(name) && memcmp(method, name, length) == 0;
}

static void serve(cgrpc_call *call, const char *method, size_t method_len, const uint8_t *request,
                  size_t request_len) {
    static const uint8_t probe_ready[] = {0x0a, 0x02, 0x08, 0x01};  // ProbeResponse{ready: true}
    if (method_is(method, method_len, "/csi.v1.Controller/CreateVolume")) {
        create_volume(call, request, request_len);
    } else if (method_is(method, method_len, "/csi.v1.Controller/DeleteVolume")) {
        delete_volume(call, request, request_len);
    } else if (method_is(method, method_len, "/csi.v1.Identity/Probe")) {
        cgrpc_call_respond(call, STATUS_OK, NULL, 0, probe_ready, sizeof probe_ready);
    } else {
        fail(call, "the floor serves only Probe, CreateVolume and DeleteVolume");
    }
}

static void on_call(void *context, cgrpc_call *call, const char *method, size_t method_len, const uint8_t *request,
                    size_t request_len, int64_t deadline_ns) {
    (void)context;
    (void)deadline_ns;
    serve(call, method, method_len, request, request_len);
}

static void on_cancel(void *context, cgrpc_call *call) {
    (void)context;
    (void)call;  // every call is answered before its callback returns
}

int main(int argc, char **argv) {
    key = getenv("BENCH_HEKETI_KEY");
    if (argc != 3 || key == NULL) {
        fprintf(stderr, "usage: BENCH_HEKETI_KEY=... %s unix:/path.sock http://host:port\n", argv[0]);
        return 2;
    }
    base_url = argv[2];
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);

    char error[512];
    cgrpc_server *server = cgrpc_server_start(argv[1], 4 << 20, NULL, on_call, on_cancel, error, sizeof error);
    if (server == NULL) {
        fprintf(stderr, "controller_floor: cannot start: %s\n", error);
        return 2;
    }
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    int unanswered = cgrpc_server_shutdown(server, 2000, 5000);
    cgrpc_server_destroy(server);
    curl_easy_cleanup(easy);
    curl_global_cleanup();
    return unanswered == 0 ? 0 : 1;
}
