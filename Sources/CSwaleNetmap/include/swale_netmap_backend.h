/*
 * swale_netmap_backend.h — what the /dev/netmap emulation (interpose.c) asks of Swale, implemented
 * in Swift (Sources/SwaleNetmap) on top of SwaleClient. Not an API for applications.
 */
#ifndef SWALE_NETMAP_BACKEND_H
#define SWALE_NETMAP_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "swale_abi.h"

/* One registered port or pipe end, as Swift opened it. */
struct swale_nm_port {
    void *handle;            /* the Swift port (retained until swale_nm_close) */
    char *base;              /* its mapping of the region */
    uint64_t nifp_offset;    /* the interface descriptor's offset in the region */
    uint64_t memsize;        /* address space reserved for the region: what netmap calls nr_memsize */
    uint64_t region_id;      /* the region's identity (the memfd's inode): equal ids share a mapping */
    uint32_t slots;          /* per ring */
    uint32_t buf_size;
    uint32_t buf_total;      /* buffers mapped now */
    uint32_t extra_bufs;     /* spare buffers granted, listed from the netmap_if's ni_bufs_head */
    int notify_fd;           /* the doorbell this port is woken on */
    struct swale_ring *tx;
    struct swale_ring *rx;
    struct swale_csb *csb;
    int is_pipe;             /* a pipe end (no virtio-net headers there) */
};

/* Opens `name` ("vale0:a", "vale0:a{3", "vale0:a}3"), shared (netmap's default) or exclusive
 * (NR_EXCLUSIVE); 0, or an errno with a message in err. */
int swale_nm_open(const char *name, uint32_t extra_bufs, int share, struct swale_nm_port *out, char *err, size_t errlen);
/* Joins the open whose wake-up descriptor this process holds as `fd` (given by another process):
 * 0, or an errno with a message in err. */
int swale_nm_adopt(int fd, struct swale_nm_port *out, char *err, size_t errlen);
void swale_nm_txsync(void *handle);
void swale_nm_rxsync(void *handle);
/* Extends the port's mapping to the region's current size; returns the number of buffers mapped. */
uint32_t swale_nm_refresh(void *handle);
void swale_nm_close(void *handle);
/* Virtio-net headers on the port (0 or 12): 0, or an errno. */
int swale_nm_set_hdr(void *handle, uint32_t length);
/* The region's memfd (the port keeps it; the emulation maps the region once per process from it). */
int swale_nm_region_fd(void *handle);

#endif
