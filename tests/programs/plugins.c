/*
 * plugins: the host program of plugin.so and libloader.so
 * (tests/tests/side_doors_plugins.rs). Each mode prints one line per
 * step; exits 0 when every step worked, 1 otherwise, 2 on bad usage.
 *
 *   plugins deepbind PLUGIN HOST PORT
 *       dlopen(PLUGIN, RTLD_NOW | RTLD_DEEPBIND), then plugin_udp to
 *       HOST:PORT connected and not: `connected ANSWER`, `sendto ANSWER`
 *   plugins runpath LOADER NAME HOST PORT
 *       dlopen(LOADER), whose loader_open opens NAME (a bare name, found
 *       through LOADER's RUNPATH) with RTLD_NOW | RTLD_DEEPBIND, then
 *       plugin_udp from it: `sendto ANSWER`, or `dlopen ERROR`
 *   plugins scope PLUGIN
 *       dlopen(PLUGIN, RTLD_NOW | RTLD_DEEPBIND): `scope plugin|host`,
 *       whose definition of bindto_test_scope the plugin sees first
 *   plugins dlmopen PLUGIN HOST PORT
 *       dlmopen(LM_ID_NEWLM, PLUGIN, RTLD_NOW), then plugin_udp as in
 *       deepbind; or `dlmopen ERROR`
 *   plugins dlmopen-unlinked FRONT PLUGIN
 *       unlinks FRONT (the preloaded libbindto.so, a copy), then as
 *       dlmopen, without sending
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*udp_fn)(const char *, int, int, char *, size_t);

/* The host's definition, exported (-rdynamic): what a plugin opened
 * without RTLD_DEEPBIND finds first. */
const char *bindto_test_scope(void)
{
    return "host";
}

static void *must(void *handle, const char *what)
{
    if (!handle) {
        printf("%s %s\n", what, dlerror());
        exit(1);
    }
    return handle;
}

static int send_both(void *plugin, const char *host, int port, int both)
{
    udp_fn udp = (udp_fn)must(dlsym(plugin, "plugin_udp"), "dlsym");
    int failed = 0;
    char answer[256];
    for (int connected = both; connected >= 0; connected--) {
        failed |= udp(host, port, connected, answer, sizeof answer) != 0;
        printf("%s %s\n", connected ? "connected" : "sendto", answer);
    }
    return failed;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "deepbind") && argc == 5) {
        void *plugin = must(dlopen(argv[2], RTLD_NOW | RTLD_DEEPBIND), "dlopen");
        return send_both(plugin, argv[3], atoi(argv[4]), 1);
    }
    if (!strcmp(mode, "runpath") && argc == 6) {
        void *loader = must(dlopen(argv[2], RTLD_NOW), "dlopen");
        void *(*open)(const char *, int) =
            (void *(*)(const char *, int))must(dlsym(loader, "loader_open"), "dlsym");
        void *plugin = must(open(argv[3], RTLD_NOW | RTLD_DEEPBIND), "dlopen");
        return send_both(plugin, argv[4], atoi(argv[5]), 0);
    }
    if (!strcmp(mode, "scope") && argc == 3) {
        void *plugin = must(dlopen(argv[2], RTLD_NOW | RTLD_DEEPBIND), "dlopen");
        const char *(*scope)(void) = (const char *(*)(void))must(dlsym(plugin, "plugin_scope"), "dlsym");
        printf("scope %s\n", scope());
        return 0;
    }
    if (!strcmp(mode, "dlmopen") && argc == 5) {
        void *plugin = must(dlmopen(LM_ID_NEWLM, argv[2], RTLD_NOW), "dlmopen");
        return send_both(plugin, argv[3], atoi(argv[4]), 1);
    }
    if (!strcmp(mode, "dlmopen-unlinked") && argc == 4) {
        if (unlink(argv[2]) != 0) {
            perror("unlink");
            return 2;
        }
        must(dlmopen(LM_ID_NEWLM, argv[3], RTLD_NOW), "dlmopen");
        printf("dlmopen ok\n");
        return 0;
    }
    fprintf(stderr, "usage: see plugins.c\n");
    return 2;
}
