/*
 * The libbpf shim (see include/swale_fastpath.h): what Swift cannot reach directly — libbpf's
 * object loader, bpf(BPF_LINK_CREATE) for tcx, SO_ATTACH_BPF, per-CPU map values.
 */
#include "swale_fastpath.h"
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif
/* enum bpf_attach_type: BPF_TCX_INGRESS (Linux 6.6) is newer than Debian 12's headers. */
#define SWALE_BPF_TCX_INGRESS 46
#define SWALE_BPF_TCX_EGRESS 47

/* libbpf's warnings (why the verifier or the kernel refused) go to the caller's buffer. */
static char *print_buf;
static size_t print_len;
static int fp_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
    if (level == LIBBPF_DEBUG || !print_buf || print_len == 0) return 0;
    size_t used = strlen(print_buf);
    if (used + 1 < print_len) vsnprintf(print_buf + used, print_len - used, fmt, ap);
    return 0;
}

static int prog_fd(struct bpf_object *obj, const char *name) {
    struct bpf_program *p = bpf_object__find_program_by_name(obj, name);
    return p ? bpf_program__fd(p) : -ENOENT;
}

static int map_fd(struct bpf_object *obj, const char *name) {
    struct bpf_map *m = bpf_object__find_map_by_name(obj, name);
    return m ? bpf_map__fd(m) : -ENOENT;
}

int swale_fp_load(const char *path, struct swale_fp_object *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = 0;
    print_buf = err;
    print_len = errlen;
    libbpf_set_print(fp_print);
    struct bpf_object *obj = bpf_object__open_file(path, NULL);
    int rc = libbpf_get_error(obj);
    if (rc) {
        print_buf = NULL;
        return rc < 0 ? rc : -rc;
    }
    struct bpf_program *p = bpf_object__find_program_by_name(obj, "swale_fp_ingress");
    if (p) bpf_program__set_type(p, BPF_PROG_TYPE_SCHED_CLS);
    p = bpf_object__find_program_by_name(obj, "swale_fp_egress");
    if (p) bpf_program__set_type(p, BPF_PROG_TYPE_SCHED_CLS);
    p = bpf_object__find_program_by_name(obj, "swale_fp_sockfilter");
    if (p) bpf_program__set_type(p, BPF_PROG_TYPE_SOCKET_FILTER);
    rc = bpf_object__load(obj);
    print_buf = NULL;
    if (rc) {
        bpf_object__close(obj);
        return rc < 0 ? rc : -rc;
    }
    out->object = obj;
    out->fdb_fd = map_fd(obj, "swale_fdb");
    out->ports_fd = map_fd(obj, "swale_ports");
    out->counters_fd = map_fd(obj, "swale_counters");
    out->ingress_fd = prog_fd(obj, "swale_fp_ingress");
    out->egress_fd = prog_fd(obj, "swale_fp_egress");
    out->sockfilter_fd = prog_fd(obj, "swale_fp_sockfilter");
    if (out->fdb_fd < 0 || out->ports_fd < 0 || out->counters_fd < 0 || out->ingress_fd < 0 || out->egress_fd < 0 || out->sockfilter_fd < 0) {
        if (err && errlen) snprintf(err, errlen, "the object lacks a program or map swaled expects");
        bpf_object__close(obj);
        memset(out, 0, sizeof *out);
        return -ENOENT;
    }
    return 0;
}

void swale_fp_unload(struct swale_fp_object *obj) {
    if (obj->object) bpf_object__close((struct bpf_object *)obj->object);
    memset(obj, 0, sizeof *obj);
}

int swale_fp_attach_tcx(int prog_fd, int ifindex, int egress) {
    int type = egress ? SWALE_BPF_TCX_EGRESS : SWALE_BPF_TCX_INGRESS;
    int fd = bpf_link_create(prog_fd, ifindex, (enum bpf_attach_type)type, NULL);
    return fd < 0 ? -errno : fd;
}

int swale_fp_attach_socket(int sock, int prog_fd) {
    return setsockopt(sock, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof prog_fd) < 0 ? -errno : 0;
}

int swale_fp_fdb_set(int fd, uint64_t address, uint32_t ifindex) {
    struct swale_fp_fdb v = { .ifindex = ifindex };
    return bpf_map_update_elem(fd, &address, &v, BPF_ANY) < 0 ? -errno : 0;
}

int swale_fp_fdb_delete(int fd, uint64_t address) {
    return bpf_map_delete_elem(fd, &address) < 0 ? -errno : 0;
}

int swale_fp_fdb_seen(int fd, uint64_t address, uint64_t *seen_ns) {
    struct swale_fp_fdb v;
    if (bpf_map_lookup_elem(fd, &address, &v) < 0) return -errno;
    *seen_ns = v.seen_ns;
    return 0;
}

int swale_fp_fdb_clear(int fd) {
    uint64_t key;
    /* Always ask for the first key: deleting while walking with the previous key can restart. */
    for (int n = 0; n < 4 * SWALE_FP_FDB_MAX; n++) {
        if (bpf_map_get_next_key(fd, NULL, &key) < 0) return errno == ENOENT ? 0 : -errno;
        if (bpf_map_delete_elem(fd, &key) < 0 && errno != ENOENT) return -errno;
    }
    return -EAGAIN;
}

int swale_fp_port_set(int fd, uint32_t ifindex, uint32_t slot, uint32_t flags) {
    struct swale_fp_port v = { .slot = slot, .flags = flags };
    return bpf_map_update_elem(fd, &ifindex, &v, BPF_ANY) < 0 ? -errno : 0;
}

int swale_fp_port_delete(int fd, uint32_t ifindex) {
    return bpf_map_delete_elem(fd, &ifindex) < 0 ? -errno : 0;
}

int swale_fp_counters_read(int fd, uint32_t slot, struct swale_fp_counters *sum) {
    memset(sum, 0, sizeof *sum);
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return ncpu < 0 ? ncpu : -EINVAL;
    struct swale_fp_counters *v = calloc((size_t)ncpu, sizeof *v);
    if (!v) return -ENOMEM;
    int rc = bpf_map_lookup_elem(fd, &slot, v) < 0 ? -errno : 0;
    for (int i = 0; rc == 0 && i < ncpu; i++) {
        sum->tx_packets += v[i].tx_packets;
        sum->tx_bytes += v[i].tx_bytes;
        sum->rx_packets += v[i].rx_packets;
        sum->rx_bytes += v[i].rx_bytes;
    }
    free(v);
    return rc;
}

int swale_fp_counters_zero(int fd, uint32_t slot) {
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return ncpu < 0 ? ncpu : -EINVAL;
    struct swale_fp_counters *v = calloc((size_t)ncpu, sizeof *v);
    if (!v) return -ENOMEM;
    int rc = bpf_map_update_elem(fd, &slot, v, BPF_ANY) < 0 ? -errno : 0;
    free(v);
    return rc;
}
