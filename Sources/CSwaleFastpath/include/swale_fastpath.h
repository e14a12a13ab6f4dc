/*
 * swale_fastpath.h — the thin libbpf shim swaled loads the kernel fast path with (Fastpath.swift
 * in SwaleKernel): open and load the BPF object, attach its tc program to an interface as a tcx
 * link (detached by the kernel when the link's descriptor closes, so nothing outlives swaled),
 * attach its socket filter to a packet socket, and read and write the maps. Every function returns
 * 0 (or a descriptor) on success and -errno on failure.
 */
#ifndef SWALE_FASTPATH_H
#define SWALE_FASTPATH_H
#include <stddef.h>
#include <stdint.h>
#include "swale_fastpath_maps.h"

struct swale_fp_object {
    void *object; /* struct bpf_object */
    int fdb_fd, ports_fd, counters_fd;
    int ingress_fd, egress_fd, sockfilter_fd;
};

/* Opens and loads the object at `path` into `out`; on failure writes what went wrong to `err`. */
int swale_fp_load(const char *path, struct swale_fp_object *out, char *err, size_t errlen);
void swale_fp_unload(struct swale_fp_object *obj);

/* A tcx link of `prog_fd` on `ifindex`'s ingress (or egress); returns the link's descriptor. */
int swale_fp_attach_tcx(int prog_fd, int ifindex, int egress);
/* SO_ATTACH_BPF of `prog_fd` on socket `sock`. */
int swale_fp_attach_socket(int sock, int prog_fd);

int swale_fp_fdb_set(int fd, uint64_t address, uint32_t ifindex);
int swale_fp_fdb_delete(int fd, uint64_t address);
/* The entry's seen_ns; -ENOENT when absent. */
int swale_fp_fdb_seen(int fd, uint64_t address, uint64_t *seen_ns);
/* Removes every entry. */
int swale_fp_fdb_clear(int fd);
int swale_fp_port_set(int fd, uint32_t ifindex, uint32_t slot, uint32_t flags);
int swale_fp_port_delete(int fd, uint32_t ifindex);
/* The sum over CPUs of slot's counters; `zero` resets them afterwards (a new port in the slot). */
int swale_fp_counters_read(int fd, uint32_t slot, struct swale_fp_counters *sum);
int swale_fp_counters_zero(int fd, uint32_t slot);

#endif
