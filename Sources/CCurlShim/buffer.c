// The growable buffer that collects a response's headers and body.
#include "shim_private.h"

#include <stdlib.h>
#include <string.h>

void ccurl_buffer_init(ccurl_buffer *buffer, size_t limit) {
    buffer->data = NULL;
    buffer->length = 0;
    buffer->capacity = 0;
    buffer->limit = limit;
    buffer->overflowed = 0;
}

void ccurl_buffer_free(ccurl_buffer *buffer) {
    free(buffer->data);
    ccurl_buffer_init(buffer, buffer->limit);
}

void ccurl_buffer_clear(ccurl_buffer *buffer) {
    buffer->length = 0;
    buffer->overflowed = 0;
}

// Makes room for `needed` bytes plus a NUL terminator.
static int ccurl_buffer_reserve(ccurl_buffer *buffer, size_t needed) {
    if (needed < buffer->length || needed == SIZE_MAX) return -1;
    if (needed + 1 <= buffer->capacity) return 0;
    size_t capacity = buffer->capacity ? buffer->capacity : 1024;
    while (capacity < needed + 1) {
        if (capacity > SIZE_MAX / 2) return -1;
        capacity *= 2;
    }
    uint8_t *data = realloc(buffer->data, capacity);
    if (data == NULL) return -1;
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

int ccurl_buffer_append(ccurl_buffer *buffer, const void *bytes, size_t length) {
    if (length == 0) return 0;
    size_t needed = buffer->length + length;
    if (needed < buffer->length || needed > buffer->limit) {
        buffer->overflowed = 1;
        return -1;
    }
    if (ccurl_buffer_reserve(buffer, needed) != 0) return -1;
    memcpy(buffer->data + buffer->length, bytes, length);
    buffer->length = needed;
    return 0;
}

int ccurl_buffer_terminate(ccurl_buffer *buffer) {
    if (ccurl_buffer_reserve(buffer, buffer->length) != 0) return -1;
    buffer->data[buffer->length] = 0;
    return 0;
}

size_t ccurl_buffer_write_body(char *bytes, size_t size, size_t count, void *context) {
    // size is always 1 for libcurl write callbacks; the product cannot overflow in practice,
    // but a short return (anything != size * count) is how we fail the transfer.
    size_t length = size * count;
    return ccurl_buffer_append((ccurl_buffer *)context, bytes, length) == 0 ? length : 0;
}

size_t ccurl_buffer_write_header(char *bytes, size_t size, size_t count, void *context) {
    ccurl_buffer *buffer = (ccurl_buffer *)context;
    size_t length = size * count;
    // A status line starts a new response (an interim 100 Continue, or a 1xx before the final
    // answer): keep only the last response's headers.
    if (length >= 5 && memcmp(bytes, "HTTP/", 5) == 0) ccurl_buffer_clear(buffer);
    return ccurl_buffer_append(buffer, bytes, length) == 0 ? length : 0;
}
