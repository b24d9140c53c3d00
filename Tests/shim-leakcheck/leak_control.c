// Positive control for asan-e2e: preloaded into one driver, it leaks 4242 bytes at start-up, so
// LeakSanitizer must report them in that driver's log. If it does not, a clean e2e run proves
// nothing about leaks.
#include <stdlib.h>

void *volatile leak_control_sink;

__attribute__((constructor)) static void leak_control(void) {
    for (int i = 0; i < 4; i++) {
        leak_control_sink = malloc(4242);
    }
    leak_control_sink = NULL;
}
