/*
 * swale_netmap.h — the netmap API (version 14) as Swale implements it: the request structures,
 * ioctl numbers and ring helpers a netmap program uses, with netmap's names and layouts (checked by
 * static asserts in interpose.c), written for Swale. A program written against netmap compiles
 * against this header and runs, unmodified, under LD_PRELOAD=libswale-netmap.so on Swale.
 *
 * The rings are Swale's (swale_abi.h), which are netmap's byte for byte.
 */
#ifndef SWALE_NETMAP_H
#define SWALE_NETMAP_H

#include <stdint.h>
#include <sys/ioctl.h>
#include "swale_abi.h"

#define NETMAP_API 14
#define NETMAP_DEVICE "/dev/netmap"

/* The shared structures are Swale's. */
#define netmap_slot swale_slot
#define netmap_ring swale_ring
#define netmap_if swale_if

/* Slot flags. */
#define NS_BUF_CHANGED SWALE_NS_BUF_CHANGED
#define NS_REPORT SWALE_NS_REPORT
#define NS_FORWARD SWALE_NS_FORWARD
#define NS_NO_LEARN SWALE_NS_NO_LEARN
#define NS_INDIRECT SWALE_NS_INDIRECT
#define NS_MOREFRAG SWALE_NS_MOREFRAG
#define NS_TXMON SWALE_NM_NS_TXMON
#define NS_PORT_SHIFT 8
#define NS_PORT_MASK SWALE_NM_NS_PORT_MASK

/* ---- requests (NIOCCTRL) ---- */

struct nmreq_option {
    uint64_t nro_next;     /* the next option, as a pointer */
    uint32_t nro_reqtype;
    uint32_t nro_status;   /* out: 0 or an errno */
    uint64_t nro_size;
};

#define NETMAP_REQ_IFNAMSIZ 64
struct nmreq_header {
    uint16_t nr_version;   /* NETMAP_API */
    uint16_t nr_reqtype;   /* NETMAP_REQ_* */
    uint32_t nr_reserved;
    char nr_name[NETMAP_REQ_IFNAMSIZ];
    uint64_t nr_options;   /* first struct nmreq_option, as a pointer */
    uint64_t nr_body;      /* the request's struct, as a pointer */
};

enum {
    NETMAP_REQ_REGISTER = 1,
    NETMAP_REQ_PORT_INFO_GET,
    NETMAP_REQ_VALE_ATTACH,
    NETMAP_REQ_VALE_DETACH,
    NETMAP_REQ_VALE_LIST,
    NETMAP_REQ_PORT_HDR_SET,
    NETMAP_REQ_PORT_HDR_GET,
    NETMAP_REQ_VALE_NEWIF,
    NETMAP_REQ_VALE_DELIF,
    NETMAP_REQ_VALE_POLLING_ENABLE,
    NETMAP_REQ_VALE_POLLING_DISABLE,
    NETMAP_REQ_POOLS_INFO_GET,
    NETMAP_REQ_SYNC_KLOOP_START,
    NETMAP_REQ_SYNC_KLOOP_STOP,
    NETMAP_REQ_CSB_ENABLE,
};

struct nmreq_register {
    uint64_t nr_offset;    /* out: the netmap_if's offset in the mapping */
    uint64_t nr_memsize;   /* out: bytes to map */
    uint32_t nr_tx_slots;
    uint32_t nr_rx_slots;
    uint16_t nr_tx_rings;
    uint16_t nr_rx_rings;
    uint16_t nr_host_tx_rings;
    uint16_t nr_host_rx_rings;
    uint16_t nr_mem_id;    /* out: ports with the same id share one mapping */
    uint16_t nr_ringid;
    uint32_t nr_mode;      /* NR_REG_* */
    uint32_t nr_extra_bufs; /* in: wanted; out: granted */
    uint64_t nr_flags;     /* NR_* below */
};

#define NR_MONITOR_TX 0x100
#define NR_MONITOR_RX 0x200
#define NR_ZCOPY_MON 0x400
#define NR_EXCLUSIVE 0x800
#define NR_RX_RINGS_ONLY 0x2000
#define NR_TX_RINGS_ONLY 0x4000
#define NR_ACCEPT_VNET_HDR 0x8000
#define NR_DO_RX_POLL 0x10000
#define NR_NO_TX_POLL 0x20000

enum {
    NR_REG_DEFAULT = 0,
    NR_REG_ALL_NIC = 1,
    NR_REG_SW = 2,
    NR_REG_NIC_SW = 3,
    NR_REG_ONE_NIC = 4,
    NR_REG_PIPE_MASTER = 5,
    NR_REG_PIPE_SLAVE = 6,
    NR_REG_NULL = 7,
    NR_REG_ONE_SW = 8,
};

struct nmreq_port_info_get {
    uint64_t nr_memsize;
    uint32_t nr_tx_slots;
    uint32_t nr_rx_slots;
    uint16_t nr_tx_rings;
    uint16_t nr_rx_rings;
    uint16_t nr_host_tx_rings;
    uint16_t nr_host_rx_rings;
    uint16_t nr_mem_id;
    uint16_t pad[3];
};

struct nmreq_port_hdr {
    uint32_t nr_hdr_len;
    uint32_t pad1;
};

struct nmreq_pools_info {
    uint64_t nr_memsize;
    uint16_t nr_mem_id;
    uint16_t pad1[3];
    uint64_t nr_if_pool_offset;
    uint32_t nr_if_pool_objtotal;
    uint32_t nr_if_pool_objsize;
    uint64_t nr_ring_pool_offset;
    uint32_t nr_ring_pool_objtotal;
    uint32_t nr_ring_pool_objsize;
    uint64_t nr_buf_pool_offset;
    uint32_t nr_buf_pool_objtotal;
    uint32_t nr_buf_pool_objsize;
};

#define NIOCCTRL _IOWR('i', 151, struct nmreq_header)
#define NIOCTXSYNC _IO('i', 148)
#define NIOCRXSYNC _IO('i', 149)

/* ---- the legacy request (NIOCGINFO, NIOCREGIF) ---- */

struct nmreq {
    char nr_name[16];
    uint32_t nr_version;
    uint32_t nr_offset;
    uint32_t nr_memsize;
    uint32_t nr_tx_slots;
    uint32_t nr_rx_slots;
    uint16_t nr_tx_rings;
    uint16_t nr_rx_rings;
    uint16_t nr_ringid;    /* NETMAP_* ring bits below; a pipe's id with NR_REG_PIPE_* */
    uint16_t nr_cmd;       /* 0: register */
    uint16_t nr_arg1;
    uint16_t nr_arg2;      /* memory id */
    uint32_t nr_arg3;      /* in: extra buffers wanted; out: granted */
    uint32_t nr_flags;     /* NR_REG_* in the low bits (NR_REG_MASK), NR_* flags above */
    uint32_t spare2[1];
};

#define NETMAP_HW_RING 0x4000
#define NETMAP_SW_RING 0x2000
#define NETMAP_RING_MASK 0x0fff
#define NETMAP_NO_TX_POLL 0x1000
#define NETMAP_DO_RX_POLL 0x8000
#define NR_REG_MASK 0xf

#define NIOCGINFO _IOWR('i', 145, struct nmreq)
#define NIOCREGIF _IOWR('i', 146, struct nmreq)

/* ---- walking the rings ---- */

#define NETMAP_IF(base, ofs) ((struct netmap_if *)(void *)((char *)(void *)(base) + (ofs)))
#define NETMAP_TXRING(nifp, i) SWALE_TXRING(nifp, i)
#define NETMAP_RXRING(nifp, i) SWALE_RXRING(nifp, i)
#define NETMAP_BUF(ring, index) SWALE_BUF(ring, index)
#define NETMAP_BUF_IDX(ring, buf) ((uint32_t)(((char *)(buf) - ((char *)(ring) + (ring)->buf_ofs)) / (ring)->nr_buf_size))

static inline uint32_t nm_ring_next(struct netmap_ring *r, uint32_t i) {
    return i + 1 == r->num_slots ? 0 : i + 1;
}

/* Slots the application may use now: [cur, tail). */
static inline uint32_t nm_ring_space(struct netmap_ring *r) {
    int64_t n = (int64_t)r->tail - (int64_t)r->cur;
    return (uint32_t)(n < 0 ? n + r->num_slots : n);
}

static inline int nm_ring_empty(struct netmap_ring *r) { return r->cur == r->tail; }

/* Transmitted slots the other side has not given back yet. */
static inline int nm_tx_pending(struct netmap_ring *r) { return nm_ring_next(r, r->tail) != r->head; }

#endif
