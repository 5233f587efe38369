/*
 * resquery: the <resolv.h> client of the DNS tests (tests/tests/dns.rs).
 *
 *   resquery FUNC TYPE ANSLEN NAME [DOMAIN]
 *
 * FUNC is query, search, querydomain, send (res_query, res_search,
 * res_querydomain, res_send of res_mkquery's query, on the thread's _res)
 * or nquery, nsearch, nquerydomain, nsend (the res_n* forms on a state of
 * res_ninit's); TYPE is A, MX or TXT;
 * ANSLEN the size of the answer buffer. Prints one line:
 *
 *   ret=N h_errno=H state=S rcode=R an=C [A 1.2.3.4] [TXT text] [cut]
 *
 * N is the return value, H the thread's h_errno, S the state's
 * res_h_errno, R and C the rcode and answer count of the header in the
 * buffer (zero if nothing was written), then each A and TXT answer of a
 * reply that fits, or `cut` when N is larger than ANSLEN.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The offset just past the (possibly compressed) name at msg[at]. */
static int skip_name(const unsigned char *msg, int len, int at) {
    while (at < len) {
        if (msg[at] == 0)
            return at + 1;
        if ((msg[at] & 0xc0) == 0xc0)
            return at + 2;
        at += msg[at] + 1;
    }
    return len;
}

static void print_answers(const unsigned char *msg, int len) {
    int at = skip_name(msg, len, 12) + 4;
    int count = msg[6] << 8 | msg[7];
    for (int i = 0; i < count && at + 10 <= len; i++) {
        at = skip_name(msg, len, at);
        int type = msg[at] << 8 | msg[at + 1];
        int rdlen = msg[at + 8] << 8 | msg[at + 9];
        const unsigned char *rdata = msg + at + 10;
        if (at + 10 + rdlen > len)
            return;
        if (type == ns_t_a && rdlen == 4) {
            char text[INET_ADDRSTRLEN];
            printf(" A %s", inet_ntop(AF_INET, rdata, text, sizeof text));
        } else if (type == ns_t_txt && rdlen > 0 && rdata[0] < rdlen) {
            printf(" TXT %.*s", rdata[0], (const char *)rdata + 1);
        }
        at += 10 + rdlen;
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: resquery FUNC TYPE ANSLEN NAME [DOMAIN]\n");
        return 2;
    }
    const char *func = argv[1];
    int type = strcmp(argv[2], "A") == 0    ? ns_t_a
               : strcmp(argv[2], "MX") == 0 ? ns_t_mx
                                            : ns_t_txt;
    int anslen = atoi(argv[3]);
    const char *name = argv[4];
    const char *domain = argc > 5 ? argv[5] : NULL;
    unsigned char *answer = calloc(1, anslen > 0 ? anslen : 1);
    struct __res_state state;
    memset(&state, 0, sizeof state);
    res_state statp = &_res;
    int ret;
    h_errno = 0;
    if (strcmp(func, "query") == 0) {
        ret = res_query(name, ns_c_in, type, answer, anslen);
    } else if (strcmp(func, "search") == 0) {
        ret = res_search(name, ns_c_in, type, answer, anslen);
    } else if (strcmp(func, "querydomain") == 0) {
        ret = res_querydomain(name, domain, ns_c_in, type, answer, anslen);
    } else if (strcmp(func, "send") == 0) {
        unsigned char query[512];
        int n = res_mkquery(ns_o_query, name, ns_c_in, type, NULL, 0, NULL, query, sizeof query);
        ret = n < 0 ? n : res_send(query, n, answer, anslen);
    } else {
        if (res_ninit(&state) != 0) {
            printf("res_ninit failed\n");
            return 1;
        }
        statp = &state;
        if (strcmp(func, "nquery") == 0)
            ret = res_nquery(&state, name, ns_c_in, type, answer, anslen);
        else if (strcmp(func, "nsearch") == 0)
            ret = res_nsearch(&state, name, ns_c_in, type, answer, anslen);
        else if (strcmp(func, "nsend") == 0) {
            unsigned char query[512];
            int n = res_nmkquery(&state, ns_o_query, name, ns_c_in, type, NULL, 0, NULL, query,
                                 sizeof query);
            ret = n < 0 ? n : res_nsend(&state, query, n, answer, anslen);
        }
        else
            ret = res_nquerydomain(&state, name, domain, ns_c_in, type, answer, anslen);
    }
    printf("ret=%d h_errno=%d state=%d rcode=%d an=%d", ret, h_errno, statp->res_h_errno,
           anslen >= 12 ? answer[3] & 0x0f : 0, anslen >= 12 ? answer[6] << 8 | answer[7] : 0);
    if (ret > anslen)
        printf(" cut");
    else if (ret > 0)
        print_answers(answer, ret);
    printf("\n");
    free(answer);
    return 0;
}
