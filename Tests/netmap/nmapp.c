/*
 * nmapp — a netmap application written as netmap users write them (a struct nmreq_header and
 * NIOCCTRL, or the legacy NIOCREGIF; mmap; NETMAP_IF / NETMAP_TXRING / NETMAP_BUF / nm_ring_next;
 * poll, select or epoll), compiled by the tests with the system C compiler and run under
 * LD_PRELOAD=libswale-netmap.so against a real swaled.
 *
 *   nmapp tx NAME COUNT SIZE [poll|ppoll|select|epoll|ioctl] [legacy] [batch=N]   COUNT frames numbered 0..COUNT-1,
 *            at most N per sync (default: all the room there is) [pace=US]: a pause after each sync,
 *            so a receiver that checks every byte keeps up (a switch drops what a full ring cannot take)
 *   nmapp rx NAME COUNT TIMEOUT_MS [poll|select|epoll] [legacy] [nocheck]  checks every frame's number and
 *            bytes (nocheck: counts only, for the benchmark; a sender with nocheck writes only the
 *            header and the number, as swale-pktgen does)
 *   nmapp pipe-zerocopy NAME COUNT [legacy]  both ends of pipe NAME{1 / NAME}1 in one process (legacy:
 *            NIOCREGIF with NR_REG_PIPE_MASTER/SLAVE and pipe id 3)
 *   nmapp extra NAME COUNT [legacy] [damage|steal]  pipe NAME{2 opened with COUNT extra buffers: the list from
 *            ni_bufs_head is checked, one extra buffer is swapped into the tx ring and sent to NAME}2
 *            (zero copy), the ring's old buffer goes back into the list (damage: into a list that loops;
 *            steal: the list names a buffer a ring slot holds)
 *   nmapp dup NAME COUNT                  COUNT frames sent through copies (dup before, F_DUPFD after registering)
 *   nmapp errors NAME                     bad requests get netmap's errors
 *   nmapp fork TXNAME RXNAME COUNT        the child sends on the parent's descriptor, the parent receives on RXNAME
 *   nmapp pass TXNAME RXNAME COUNT        descriptor passing as netmap's fd_server does it: the parent registers
 *            TXNAME and sends the descriptor (SCM_RIGHTS) with nr_memsize and nr_offset to a child
 *            forked before, which maps it and sends COUNT frames; the parent receives on RXNAME
 *   nmapp hold NAME SECONDS               registers NAME (shared), says "holding", sleeps, closes
 *   nmapp vnet BRIDGE                     virtio-net headers (12 bytes): ports BRIDGE:va and BRIDGE:vb
 *            with headers, BRIDGE:vc without; plain frames both ways; a UDP frame asking for its
 *            checksum and a TCP GSO frame (1800 bytes, 600 per segment) sent from va reach vc
 *            finished (checksum, 3 segments) and vb as they were sent (header and all)
 *   [excl] on tx/rx/hold: register with NR_EXCLUSIVE (netmap's /x)
 *
 * Frames: destination ff:ff:ff:ff:ff:ff, source 02:00:00:00:00:SS, type 0x88b5, then the 32-bit
 * frame number, then bytes (number + i) & 0xff.
 */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "swale_netmap.h"

struct port {
    int fd;
    void *mem;
    uint64_t memsize;
    struct netmap_if *nifp;
    struct netmap_ring *tx, *rx;
    uint16_t mem_id;
};

static void die(const char *what) {
    fprintf(stderr, "nmapp: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Registers the already open p->fd on `name` (legacy: NIOCREGIF) and maps it. `extra`, if given:
 * extra buffers wanted in, granted out. -1 with errno if the register fails. */
static int excl; /* NR_EXCLUSIVE on registers of tx, rx and hold */

/* A request header as netmap programs fill it: API version, type, port name, body. */
static void request(struct nmreq_header *hdr, uint16_t reqtype, const char *name, void *body) {
    memset(hdr, 0, sizeof *hdr);
    hdr->nr_version = NETMAP_API;
    hdr->nr_reqtype = reqtype;
    snprintf(hdr->nr_name, sizeof hdr->nr_name, "%s", name);
    hdr->nr_body = (uintptr_t)body;
}

static int reg_fd(struct port *p, const char *name, int legacy, int mode, uint16_t ringid, uint32_t *extra) {
    uint64_t offset;
    if (legacy) {
        struct nmreq req;
        memset(&req, 0, sizeof req);
        snprintf(req.nr_name, sizeof req.nr_name, "%s", name);
        req.nr_version = NETMAP_API;
        req.nr_flags = (uint32_t)mode | (excl ? NR_EXCLUSIVE : 0);
        req.nr_ringid = ringid;
        req.nr_arg3 = extra ? *extra : 0;
        if (ioctl(p->fd, NIOCREGIF, &req) < 0) return -1;
        p->memsize = req.nr_memsize;
        p->mem_id = req.nr_arg2;
        offset = req.nr_offset;
        if (extra) *extra = req.nr_arg3;
    } else {
        struct nmreq_header hdr;
        struct nmreq_register r;
        memset(&r, 0, sizeof r);
        request(&hdr, NETMAP_REQ_REGISTER, name, &r);
        r.nr_mode = (uint32_t)mode;
        r.nr_flags = excl ? NR_EXCLUSIVE : 0;
        r.nr_ringid = ringid;
        r.nr_extra_bufs = extra ? *extra : 0;
        if (ioctl(p->fd, NIOCCTRL, &hdr) < 0) return -1;
        p->memsize = r.nr_memsize;
        p->mem_id = r.nr_mem_id;
        offset = r.nr_offset;
        if (extra) *extra = r.nr_extra_bufs;
    }
    p->mem = mmap(NULL, p->memsize, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (p->mem == MAP_FAILED) die("mmap");
    p->nifp = NETMAP_IF(p->mem, offset);
    p->tx = NETMAP_TXRING(p->nifp, 0);
    p->rx = NETMAP_RXRING(p->nifp, 0);
    return 0;
}

static int reg(struct port *p, const char *name, int legacy, int mode, uint16_t ringid) {
    p->fd = open("/dev/netmap", O_RDWR);
    if (p->fd < 0) die("open /dev/netmap");
    return reg_fd(p, name, legacy, mode, ringid, NULL);
}

static void open_port(struct port *p, const char *name, int legacy) {
    if (reg(p, name, legacy, NR_REG_ALL_NIC, 0) < 0) die(name);
}

static void fill(char *buf, uint32_t n, unsigned size, unsigned src) {
    memset(buf, 0xff, 6);
    uint8_t mac[6] = {2, 0, 0, 0, 0, (uint8_t)src};
    memcpy(buf + 6, mac, 6);
    buf[12] = (char)0x88;
    buf[13] = (char)0xb5;
    memcpy(buf + 14, &n, 4);
    for (unsigned i = 18; i < size; i++) buf[i] = (char)((n + i) & 0xff);
}

static int check(const char *buf, unsigned len, uint32_t want) {
    uint32_t n;
    if (len < 18) return 0;
    memcpy(&n, buf + 14, 4);
    if (n != want) return 0;
    for (unsigned i = 18; i < len; i++)
        if ((uint8_t)buf[i] != ((n + i) & 0xff)) return 0;
    return 1;
}

enum wait_kind { W_POLL, W_PPOLL, W_SELECT, W_EPOLL, W_IOCTL };

static enum wait_kind kind(const char *s) {
    if (!s || !strcmp(s, "poll")) return W_POLL;
    if (!strcmp(s, "ppoll")) return W_PPOLL;
    if (!strcmp(s, "select")) return W_SELECT;
    if (!strcmp(s, "epoll")) return W_EPOLL;
    return W_IOCTL;
}

/* Waits the netmap way until the descriptor is readable (in) or writable (!in). */
static int wait_for(struct port *p, int in, enum wait_kind k, int timeout_ms, int epfd) {
    if (k == W_POLL || k == W_IOCTL) {
        if (k == W_IOCTL && !in) {
            ioctl(p->fd, NIOCTXSYNC, NULL);
            if (nm_ring_space(p->tx) == 0) usleep(50);
            return 1;
        }
        struct pollfd pfd = {.fd = p->fd, .events = in ? POLLIN : POLLOUT};
        return poll(&pfd, 1, timeout_ms);
    }
    if (k == W_PPOLL) {
        struct pollfd pfd = {.fd = p->fd, .events = in ? POLLIN : POLLOUT};
        struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
        return ppoll(&pfd, 1, &ts, NULL);
    }
    if (k == W_SELECT) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(p->fd, &set);
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        return select(p->fd + 1, in ? &set : NULL, in ? NULL : &set, NULL, &tv);
    }
    struct epoll_event ev;
    return epoll_wait(epfd, &ev, 1, timeout_ms);
}

static int epoll_for(struct port *p, int in) {
    int epfd = epoll_create1(0);
    struct epoll_event ev = {.events = in ? EPOLLIN : EPOLLOUT, .data.u32 = 7};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &ev) < 0) die("epoll_ctl");
    return epfd;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t batch = UINT32_MAX, pace_us;
static int nocheck, legacy, damage, steal;

static int do_tx(struct port *p, uint32_t count, unsigned size, enum wait_kind k, unsigned src) {
    int epfd = k == W_EPOLL ? epoll_for(p, 0) : -1;
    char header[18];
    fill(header, 0, sizeof header, src);
    uint32_t sent = 0;
    double t0 = now();
    while (sent < count) {
        struct netmap_ring *ring = p->tx;
        uint32_t space = nm_ring_space(ring);
        if (space == 0) {
            if (wait_for(p, 0, k, 1000, epfd) < 0) die("wait for tx room");
            continue;
        }
        uint32_t cur = ring->cur;
        if (space > batch) space = batch;
        for (; space > 0 && sent < count; space--, sent++) {
            struct netmap_slot *slot = &ring->slot[cur];
            char *buf = NETMAP_BUF(ring, slot->buf_idx);
            if (nocheck) { /* the benchmark: header and number only, as swale-pktgen writes */
                memcpy(buf, header, 14);
                memcpy(buf + 14, &sent, 4);
            } else {
                fill(buf, sent, size, src);
            }
            slot->len = (uint16_t)size;
            slot->flags = 0;
            cur = nm_ring_next(ring, cur);
        }
        ring->head = ring->cur = cur;
        ioctl(p->fd, NIOCTXSYNC, NULL);
        if (pace_us) usleep(pace_us);
    }
    double dt = now() - t0;
    printf("sent %" PRIu32 " frames in %.3f s: %.0f pps\n", sent, dt, sent / (dt > 0 ? dt : 1e-9));
    close(p->fd); /* waits for the switch to take what is still in the ring */
    return 0;
}

static int do_rx(struct port *p, uint32_t count, int timeout_ms, enum wait_kind k) {
    int epfd = k == W_EPOLL ? epoll_for(p, 1) : -1;
    uint32_t got = 0, bad = 0;
    double t0 = 0, last = 0;
    while (got < count) {
        struct netmap_ring *ring = p->rx;
        if (nm_ring_empty(ring)) {
            int r = wait_for(p, 1, k, timeout_ms, epfd);
            if (r < 0) die("wait for rx");
            if (r == 0 && nm_ring_empty(ring)) break; /* timeout */
            continue;
        }
        if (got == 0) t0 = now();
        uint32_t cur = ring->cur;
        while (cur != ring->tail && got < count) {
            struct netmap_slot *slot = &ring->slot[cur];
            if (!nocheck && !check(NETMAP_BUF(ring, slot->buf_idx), slot->len, got)) bad++;
            got++;
            cur = nm_ring_next(ring, cur);
        }
        ring->head = ring->cur = cur;
        ioctl(p->fd, NIOCRXSYNC, NULL);
        last = now();
    }
    double dt = last - t0; /* first to last frame: a final timeout is not counted */
    printf("received %" PRIu32 " frames, %" PRIu32 " bad, in %.3f s: %.0f pps\n", got, bad, dt, got / (dt > 0 ? dt : 1e-9));
    close(p->fd);
    return got == count && bad == 0 ? 0 : 1;
}

/* Both ends of a pipe in one process: one mapping (same mem_id), and the receiver finds the very
 * buffers the sender filled. */
static int do_pipe(const char *name, uint32_t count) {
    char m[80], s[80];
    snprintf(m, sizeof m, "%s{1", name);
    snprintf(s, sizeof s, "%s}1", name);
    struct port a, b;
    if (legacy) { /* the pre-API-14 spelling: the parent's name, NR_REG_PIPE_* and the pipe id as ring id */
        if (reg(&a, name, 1, NR_REG_PIPE_MASTER, 3) < 0) die("legacy pipe master");
        if (reg(&b, name, 1, NR_REG_PIPE_SLAVE, 3) < 0) die("legacy pipe slave");
    } else {
        open_port(&a, m, 0);
        open_port(&b, s, 0);
    }
    if (a.mem_id != b.mem_id || a.mem != b.mem) {
        fprintf(stderr, "pipe ends: mem_id %u/%u, mappings %p/%p\n", a.mem_id, b.mem_id, a.mem, b.mem);
        return 1;
    }
    uint32_t sent = 0, got = 0, copies = 0;
    while (got < count) {
        uint32_t idx[1024];
        uint32_t n = 0, cur = a.tx->cur;
        for (uint32_t space = nm_ring_space(a.tx); space > 0 && sent < count && n < 1024; space--, sent++, n++) {
            struct netmap_slot *slot = &a.tx->slot[cur];
            idx[n] = slot->buf_idx;
            fill(NETMAP_BUF(a.tx, slot->buf_idx), sent, 60, 1);
            slot->len = 60;
            cur = nm_ring_next(a.tx, cur);
        }
        a.tx->head = a.tx->cur = cur;
        if (n == 0) { /* no room: wait until the receiver's released slots come back */
            struct pollfd out = {.fd = a.fd, .events = POLLOUT};
            if (poll(&out, 1, 1000) <= 0) break;
            continue;
        }
        ioctl(a.fd, NIOCTXSYNC, NULL);
        struct pollfd pfd = {.fd = b.fd, .events = POLLIN};
        if (poll(&pfd, 1, 1000) <= 0) break;
        uint32_t k = 0;
        cur = b.rx->cur;
        while (cur != b.rx->tail) {
            struct netmap_slot *slot = &b.rx->slot[cur];
            if (!check(NETMAP_BUF(b.rx, slot->buf_idx), slot->len, got)) {
                fprintf(stderr, "frame %u wrong\n", got);
                return 1;
            }
            if (k < n && slot->buf_idx != idx[k]) copies++;
            k++;
            got++;
            cur = nm_ring_next(b.rx, cur);
        }
        b.rx->head = b.rx->cur = cur;
        ioctl(b.fd, NIOCRXSYNC, NULL);
    }
    printf("pipe: %u of %u frames, %u not in the sender's buffers, mem_id %u\n", got, count, copies, a.mem_id);
    close(a.fd);
    close(b.fd);
    return got == count && copies == 0 ? 0 : 1;
}

static int do_extra(const char *name, uint32_t want) {
    char m[NETMAP_REQ_IFNAMSIZ], s[NETMAP_REQ_IFNAMSIZ];
    snprintf(m, sizeof m, "%.58s{2", name);
    snprintf(s, sizeof s, "%.58s}2", name);
    struct port a, b;
    a.fd = open("/dev/netmap", O_RDWR);
    uint32_t granted = want;
    /* legacy: the parent's name with NR_REG_PIPE_MASTER and pipe id 2; else "NAME{2" */
    if (reg_fd(&a, legacy ? name : m, legacy, legacy ? NR_REG_PIPE_MASTER : NR_REG_ALL_NIC, legacy ? 2 : 0, &granted) < 0)
        die("register with extra buffers");
    open_port(&b, s, 0);
    /* The list: distinct indices inside the mapping, as many as granted. */
    uint32_t n = 0, idx = a.nifp->ni_bufs_head, first = idx;
    uint32_t *seen = calloc(granted + 1, sizeof *seen);
    while (idx != 0 && n <= granted) {
        if ((uint64_t)idx * a.tx->nr_buf_size >= a.memsize) { printf("extra: index %u outside the mapping\n", idx); return 1; }
        for (uint32_t k = 0; k < n; k++)
            if (seen[k] == idx) { printf("extra: index %u twice\n", idx); return 1; }
        seen[n++] = idx;
        idx = *(uint32_t *)NETMAP_BUF(a.tx, idx);
    }
    if (n != granted || granted != want) { printf("extra: asked %u, granted %u, listed %u\n", want, granted, n); return 1; }
    /* Swap the first extra buffer into tx slot cur; the slot's buffer takes its place in the list. */
    struct netmap_slot *slot = &a.tx->slot[a.tx->cur];
    uint32_t old = slot->buf_idx;
    uint32_t rest = *(uint32_t *)NETMAP_BUF(a.tx, first);
    fill(NETMAP_BUF(a.tx, first), 0, 60, 1);
    slot->buf_idx = first;
    slot->len = 60;
    slot->flags = NS_BUF_CHANGED;
    *(uint32_t *)NETMAP_BUF(a.tx, old) = rest;
    a.nifp->ni_bufs_head = old;
    a.tx->head = a.tx->cur = nm_ring_next(a.tx, a.tx->cur);
    ioctl(a.fd, NIOCTXSYNC, NULL);
    struct pollfd pfd = {.fd = b.fd, .events = POLLIN};
    if (poll(&pfd, 1, 2000) <= 0) { printf("extra: nothing arrived\n"); return 1; }
    struct netmap_slot *in = &b.rx->slot[b.rx->cur];
    int ok = check(NETMAP_BUF(b.rx, in->buf_idx), in->len, 0) && in->buf_idx == first;
    printf("extra: asked %u, granted %u, listed %u; frame from an extra buffer %s\n", want, granted, n,
           ok ? "arrived in that buffer" : "WRONG");
    b.rx->head = b.rx->cur = nm_ring_next(b.rx, b.rx->cur);
    ioctl(b.fd, NIOCRXSYNC, NULL);
    if (damage) { /* a hostile list: the head names itself, so a careless walk would never end */
        *(uint32_t *)NETMAP_BUF(a.tx, old) = old;
        printf("extra: list damaged\n");
    }
    if (steal) { /* a hostile list: it names a buffer a live ring slot holds, to have it freed */
        a.nifp->ni_bufs_head = a.tx->slot[a.tx->cur].buf_idx;
        printf("extra: list names a ring's buffer\n");
    }
    close(a.fd);
    close(b.fd);
    return ok ? 0 : 1;
}

static int expect(const char *what, int rc, int want_errno) {
    int ok = rc < 0 && errno == want_errno;
    printf("%s: %s (%s)\n", what, ok ? "ok" : "WRONG", rc < 0 ? strerror(errno) : "succeeded");
    return ok ? 0 : 1;
}

static int do_errors(const char *name) {
    int bad = 0;
    struct port p;
    p.fd = open("/dev/netmap", O_RDWR);
    struct nmreq_header hdr;
    struct nmreq_register r;
    memset(&r, 0, sizeof r);
    request(&hdr, NETMAP_REQ_REGISTER, name, &r);
    hdr.nr_version = 13;
    bad += expect("API version 13", ioctl(p.fd, NIOCCTRL, &hdr), EINVAL);
    hdr.nr_version = NETMAP_API;
    hdr.nr_reqtype = 99;
    bad += expect("unknown request", ioctl(p.fd, NIOCCTRL, &hdr), EINVAL);
    hdr.nr_reqtype = NETMAP_REQ_VALE_ATTACH;
    bad += expect("VALE attach", ioctl(p.fd, NIOCCTRL, &hdr), EOPNOTSUPP);
    hdr.nr_reqtype = NETMAP_REQ_REGISTER;
    r.nr_mode = NR_REG_SW;
    bad += expect("host rings", ioctl(p.fd, NIOCCTRL, &hdr), EOPNOTSUPP);
    r.nr_mode = NR_REG_ALL_NIC;
    struct nmreq_option opt = {.nro_reqtype = 1};
    hdr.nr_options = (uintptr_t)&opt;
    bad += expect("an option", ioctl(p.fd, NIOCCTRL, &hdr), EOPNOTSUPP);
    if (opt.nro_status != EOPNOTSUPP) { printf("option status %u: WRONG\n", opt.nro_status); bad++; }
    hdr.nr_options = 0;
    bad += expect("txsync before register", ioctl(p.fd, NIOCTXSYNC, NULL), ENXIO);
    errno = 0;
    void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, p.fd, 0);
    bad += expect("mmap before register", m == MAP_FAILED ? -1 : 0, ENXIO);
    snprintf(hdr.nr_name, sizeof hdr.nr_name, "vale0:bad name");
    bad += expect("malformed name", ioctl(p.fd, NIOCCTRL, &hdr), EINVAL);
    snprintf(hdr.nr_name, sizeof hdr.nr_name, "%s", name);
    r.nr_flags = NR_EXCLUSIVE;
    if (ioctl(p.fd, NIOCCTRL, &hdr) < 0) die("register");
    printf("register: ok\n");
    bad += expect("register twice", ioctl(p.fd, NIOCCTRL, &hdr), EBUSY);
    struct nmreq_port_hdr ph = {.nr_hdr_len = 14};
    hdr.nr_reqtype = NETMAP_REQ_PORT_HDR_SET;
    hdr.nr_body = (uintptr_t)&ph;
    bad += expect("virtio-net header 14", ioctl(p.fd, NIOCCTRL, &hdr), EINVAL);
    struct port q;
    q.fd = open("/dev/netmap", O_RDWR);
    memset(&r, 0, sizeof r);
    hdr.nr_reqtype = NETMAP_REQ_REGISTER;
    hdr.nr_body = (uintptr_t)&r;
    bad += expect("shared open of a port held exclusively", ioctl(q.fd, NIOCCTRL, &hdr), EBUSY);
    r.nr_flags = NR_EXCLUSIVE;
    bad += expect("exclusive open of a port held exclusively", ioctl(q.fd, NIOCCTRL, &hdr), EBUSY);
    close(q.fd);
    close(p.fd);
    printf("errors: %d wrong\n", bad);
    return bad ? 1 : 0;
}

/* Copies of a netmap descriptor name the same open: one made before registering (dup), one after
 * (F_DUPFD_CLOEXEC); the original is closed and the copies carry on: half the frames with poll and
 * syncs on each, then both closed. */
static int do_dup(const char *txname, uint32_t count) {
    struct port p;
    p.fd = open("/dev/netmap", O_RDWR);
    int before = dup(p.fd);
    if (reg_fd(&p, txname, 0, NR_REG_ALL_NIC, 0, NULL) < 0) die("register");
    int after = fcntl(p.fd, F_DUPFD_CLOEXEC, 20);
    if (before < 0 || after < 20) die("copies");
    if (mmap(NULL, p.memsize, PROT_READ | PROT_WRITE, MAP_SHARED, after, 0) != p.mem) {
        fprintf(stderr, "dup: the copy maps elsewhere\n");
        return 1;
    }
    close(p.fd);
    uint32_t sent = 0;
    for (int half = 0; half < 2; half++) {
        int fd = half == 0 ? before : after;
        uint32_t until = half == 0 ? count / 2 : count;
        while (sent < until) {
            if (nm_ring_space(p.tx) == 0) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                if (poll(&pfd, 1, 2000) <= 0) die("poll on a copy");
                continue;
            }
            uint32_t cur = p.tx->cur;
            for (uint32_t k = 0; k < 16 && sent < until && nm_ring_space(p.tx) > k; k++, sent++) {
                struct netmap_slot *slot = &p.tx->slot[cur];
                fill(NETMAP_BUF(p.tx, slot->buf_idx), sent, 60, 1);
                slot->len = 60;
                cur = nm_ring_next(p.tx, cur);
            }
            p.tx->head = p.tx->cur = cur;
            if (ioctl(fd, NIOCTXSYNC, NULL) < 0) die("txsync on a copy");
        }
        close(fd); /* the first close leaves the port to the other copy */
    }
    printf("dup: sent %u frames through copies of the descriptor\n", sent);
    return 0;
}

/* The child transmits on the descriptor it inherited; the parent receives on the peer port. */
static int do_fork(const char *txname, const char *rxname, uint32_t count) {
    struct port t, r;
    open_port(&t, txname, 0);
    open_port(&r, rxname, 1);
    pid_t pid = fork();
    if (pid == 0) {
        close(r.fd);
        _exit(do_tx(&t, count, 60, W_POLL, 1));
    }
    int rc = do_rx(&r, count, 3000, W_POLL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(t.fd);
    return rc || !WIFEXITED(status) || WEXITSTATUS(status);
}

/* What netmap's fd_server sends with a descriptor: where to find the rings in the mapping. */
struct handover {
    uint64_t memsize, offset;
};

static void send_fd(int sock, int fd, struct handover *h) {
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct iovec iov = {.iov_base = h, .iov_len = sizeof *h};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(sock, &msg, 0) < 0) die("sendmsg");
}

static int recv_fd(int sock, struct handover *h) {
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = h, .iov_len = sizeof *h};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    if (recvmsg(sock, &msg, 0) != (ssize_t)sizeof *h) die("recvmsg");
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) die("no descriptor came");
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* The child is forked before anything is opened, so all it knows of the port is the descriptor
 * and what came with it. The parent keeps its own descriptor open meanwhile, as fd_server does. */
static int do_pass(const char *txname, const char *rxname, uint32_t count) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0) die("socketpair");
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        struct handover h;
        struct port p;
        p.fd = recv_fd(sv[1], &h);
        p.memsize = h.memsize;
        p.mem = mmap(NULL, h.memsize, PROT_READ | PROT_WRITE, MAP_SHARED, p.fd, 0);
        if (p.mem == MAP_FAILED) die("mmap of the descriptor passed");
        p.nifp = NETMAP_IF(p.mem, h.offset);
        p.tx = NETMAP_TXRING(p.nifp, 0);
        p.rx = NETMAP_RXRING(p.nifp, 0);
        printf("child: mapped the descriptor passed (%" PRIu64 " bytes)\n", h.memsize);
        _exit(do_tx(&p, count, 60, W_POLL, 1));
    }
    close(sv[1]);
    struct port t, r;
    open_port(&r, rxname, 0);
    t.fd = open("/dev/netmap", O_RDWR);
    struct nmreq_header hdr;
    struct nmreq_register reg;
    memset(&reg, 0, sizeof reg);
    request(&hdr, NETMAP_REQ_REGISTER, txname, &reg);
    reg.nr_mode = NR_REG_ALL_NIC;
    if (ioctl(t.fd, NIOCCTRL, &hdr) < 0) die(txname);
    struct handover h = {.memsize = reg.nr_memsize, .offset = reg.nr_offset};
    send_fd(sv[0], t.fd, &h);
    int rc = do_rx(&r, count, 3000, W_POLL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(t.fd);
    return rc || !WIFEXITED(status) || WEXITSTATUS(status);
}

/* ---- virtio-net headers ---- */

static int hdr_ctl(struct port *p, const char *name, uint16_t req, uint32_t *len) {
    struct nmreq_header hdr;
    struct nmreq_port_hdr ph = {.nr_hdr_len = *len};
    request(&hdr, req, name, &ph);
    int rc = ioctl(p->fd, NIOCCTRL, &hdr);
    *len = ph.nr_hdr_len;
    return rc;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s) {
    for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) s += (uint32_t)(p[n - 1] << 8);
    return s;
}

static uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* An IPv4 frame from 10.0.0.1 to 10.0.0.2 (broadcast MAC) with `l4len` bytes of UDP (17) or TCP (6). */
static unsigned ip_frame(uint8_t *f, int proto, unsigned l4len) {
    memset(f, 0xff, 6);
    uint8_t src[6] = {2, 0, 0, 0, 0, 0xa};
    memcpy(f + 6, src, 6);
    f[12] = 0x08, f[13] = 0x00;
    uint8_t *ip = f + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45, ip[8] = 64, ip[9] = (uint8_t)proto;
    ip[2] = (uint8_t)((20 + l4len) >> 8), ip[3] = (uint8_t)(20 + l4len);
    ip[12] = 10, ip[15] = 1, ip[16] = 10, ip[19] = 2;
    uint16_t c = (uint16_t)~fold(sum16(ip, 20, 0));
    ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
    return 14 + 20 + l4len;
}

/* The pseudo-header sum of the frame's IPv4 header for `l4len` bytes (what "checksum partial" leaves). */
static uint32_t pseudo(const uint8_t *ip, unsigned l4len) {
    return sum16(ip + 12, 8, 0) + ip[9] + l4len;
}

/* A finished L4 checksum: the sum over pseudo-header and segment is 0xffff. */
static int l4_ok(const uint8_t *f, unsigned len) {
    const uint8_t *ip = f + 14;
    unsigned l4len = (unsigned)(ip[2] << 8 | ip[3]) - 20;
    return len >= 34 + l4len && fold(sum16(ip + 20, l4len, pseudo(ip, l4len))) == 0xffff;
}

static void send_one(struct port *p, const uint8_t *f, unsigned len) {
    struct netmap_slot *s = &p->tx->slot[p->tx->cur];
    memcpy(NETMAP_BUF(p->tx, s->buf_idx), f, len);
    s->len = (uint16_t)len;
    s->flags = 0;
    p->tx->head = p->tx->cur = nm_ring_next(p->tx, p->tx->cur);
    if (ioctl(p->fd, NIOCTXSYNC, NULL) < 0) die("txsync");
}

/* Up to `max` frames that arrive within a second, copied into out[i] (2048 bytes each). */
static unsigned recv_some(struct port *p, uint8_t out[][2048], unsigned *lens, unsigned max) {
    unsigned n = 0;
    double until = now() + 1.0;
    while (n < max && now() < until) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        if (nm_ring_empty(p->rx)) {
            poll(&pfd, 1, 100);
            continue;
        }
        struct netmap_slot *s = &p->rx->slot[p->rx->cur];
        lens[n] = s->len;
        memcpy(out[n++], NETMAP_BUF(p->rx, s->buf_idx), s->len < 2048 ? s->len : 2048);
        p->rx->head = p->rx->cur = nm_ring_next(p->rx, p->rx->cur);
        ioctl(p->fd, NIOCRXSYNC, NULL);
    }
    return n;
}

static uint8_t got[8][2048];
static unsigned lens[8];

static int do_vnet(const char *bridge) {
    const uint32_t h = 12;
    int bad = 0;
    char na[64], nb[64], nc[64];
    snprintf(na, sizeof na, "%s:va", bridge);
    snprintf(nb, sizeof nb, "%s:vb", bridge);
    snprintf(nc, sizeof nc, "%s:vc", bridge);
    struct port a, b, c;
    open_port(&a, na, 0);
    /* b: set before registering, as a program may; a: after. */
    b.fd = open("/dev/netmap", O_RDWR);
    uint32_t len = h;
    if (hdr_ctl(&b, nb, NETMAP_REQ_PORT_HDR_SET, &len) < 0) die("PORT_HDR_SET before register");
    if (reg_fd(&b, nb, 0, NR_REG_ALL_NIC, 0, NULL) < 0) die(nb);
    open_port(&c, nc, 0);
    len = h;
    if (hdr_ctl(&a, na, NETMAP_REQ_PORT_HDR_SET, &len) < 0) die("PORT_HDR_SET");
    len = 0;
    if (hdr_ctl(&a, na, NETMAP_REQ_PORT_HDR_GET, &len) < 0 || len != h) {
        printf("PORT_HDR_GET: %u: WRONG\n", len);
        bad++;
    }
    len = 11;
    bad += expect("header length 11", hdr_ctl(&a, na, NETMAP_REQ_PORT_HDR_SET, &len), EINVAL);
    len = 10;
    bad += expect("legacy header length 10", hdr_ctl(&a, na, NETMAP_REQ_PORT_HDR_SET, &len), EOPNOTSUPP);

    /* 1: a plain frame from va (zeroed header): vb gets it with a zeroed header, vc without. */
    uint8_t f[2048], frame[2048];
    fill((char *)frame, 1, 60, 0xa);
    memset(f, 0, h);
    memcpy(f + h, frame, 60);
    send_one(&a, f, h + 60);
    unsigned n = recv_some(&b, got, lens, 1);
    int ok = n == 1 && lens[0] == h + 60 && !memcmp(got[0], f, h + 60);
    n = recv_some(&c, got, lens, 1);
    ok = ok && n == 1 && lens[0] == 60 && !memcmp(got[0], frame, 60);
    printf("plain frame from a header port: %s\n", ok ? "ok" : "WRONG");
    bad += !ok;

    /* 2: a plain frame from vc: both header ports get a zeroed header in front. */
    send_one(&c, frame, 60);
    n = recv_some(&a, got, lens, 1);
    ok = n == 1 && lens[0] == h + 60 && !memcmp(got[0], f, h + 60);
    n = recv_some(&b, got, lens, 1);
    ok = ok && n == 1 && lens[0] == h + 60 && !memcmp(got[0], f, h + 60);
    printf("plain frame to header ports: %s\n", ok ? "ok" : "WRONG");
    bad += !ok;

    /* 3: UDP asking for its checksum (NEEDS_CSUM from byte 34, field at +6). */
    unsigned flen = ip_frame(frame, 17, 8 + 100);
    uint8_t *udp = frame + 34;
    udp[0] = 0x30, udp[1] = 0x39, udp[2] = 0x30, udp[3] = 0x3a, udp[4] = 0, udp[5] = 108;
    for (int i = 0; i < 100; i++) udp[8 + i] = (uint8_t)(i * 3);
    uint16_t ps = fold(pseudo(frame + 14, 108));
    udp[6] = (uint8_t)(ps >> 8), udp[7] = (uint8_t)ps;
    memset(f, 0, h);
    f[0] = 1;           /* VIRTIO_NET_HDR_F_NEEDS_CSUM */
    f[6] = 34, f[8] = 6; /* csum_start, csum_offset (little endian) */
    memcpy(f + h, frame, flen);
    send_one(&a, f, h + flen);
    n = recv_some(&c, got, lens, 1);
    ok = n == 1 && lens[0] == flen && l4_ok(got[0], lens[0]) && !memcmp(got[0] + 42, udp + 8, 100);
    n = recv_some(&b, got, lens, 1);
    ok = ok && n == 1 && lens[0] == h + flen && !memcmp(got[0], f, h + flen);
    printf("UDP checksum completed for vc, asked of vb: %s\n", ok ? "ok" : "WRONG");
    bad += !ok;

    /* 4: TCP GSO: 1800 bytes of payload, 600 per segment, checksum partial. */
    flen = ip_frame(frame, 6, 20 + 1800);
    uint8_t *tcp = frame + 34;
    memset(tcp, 0, 20);
    tcp[0] = 0x30, tcp[1] = 0x39, tcp[2] = 0x00, tcp[3] = 0x50;
    tcp[4] = 0, tcp[5] = 0, tcp[6] = 0x10, tcp[7] = 0; /* seq 4096 */
    tcp[12] = 0x50, tcp[13] = 0x18;                    /* 20 bytes, PSH ACK */
    for (int i = 0; i < 1800; i++) tcp[20 + i] = (uint8_t)(i * 7);
    ps = fold(pseudo(frame + 14, 1820));
    tcp[16] = (uint8_t)(ps >> 8), tcp[17] = (uint8_t)ps;
    memset(f, 0, h);
    f[0] = 1, f[1] = 1;          /* NEEDS_CSUM, GSO TCPv4 */
    f[2] = 54;                   /* hdr_len */
    f[4] = 600 & 0xff, f[5] = 600 >> 8;
    f[6] = 34, f[8] = 16;
    memcpy(f + h, frame, flen);
    send_one(&a, f, h + flen);
    n = recv_some(&c, got, lens, 4);
    ok = n == 3;
    for (unsigned i = 0; ok && i < n; i++) {
        const uint8_t *s = got[i];
        uint32_t seq = (uint32_t)(s[38] << 24 | s[39] << 16 | s[40] << 8 | s[41]);
        ok = lens[i] == 54 + 600 && l4_ok(s, lens[i]) && seq == 4096 + 600 * i && !memcmp(s + 54, tcp + 20 + 600 * i, 600);
    }
    printf("TCP GSO cut into 3 segments for vc: %s\n", ok ? "ok" : "WRONG");
    bad += !ok;
    n = recv_some(&b, got, lens, 2);
    ok = n == 1 && lens[0] == h + flen && !memcmp(got[0], f, h + flen);
    printf("TCP GSO whole for vb: %s\n", ok ? "ok" : "WRONG");
    bad += !ok;

    /* Pipe ends have no headers on netmap either. */
    struct port pp;
    char np[64];
    snprintf(np, sizeof np, "%s:vp{1", bridge);
    open_port(&pp, np, 0);
    len = h;
    bad += expect("header on a pipe end", hdr_ctl(&pp, np, NETMAP_REQ_PORT_HDR_SET, &len), EOPNOTSUPP);
    close(pp.fd);
    close(a.fd), close(b.fd), close(c.fd);
    printf("vnet: %d wrong\n", bad);
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: nmapp tx|rx|pipe-zerocopy|errors|fork NAME ...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 3; i < argc; i++) {
        if (!strncmp(argv[i], "batch=", 6)) batch = (uint32_t)strtoul(argv[i] + 6, NULL, 0);
        if (!strcmp(argv[i], "nocheck")) nocheck = 1;
        if (!strncmp(argv[i], "pace=", 5)) pace_us = (uint32_t)strtoul(argv[i] + 5, NULL, 0);
        if (!strcmp(argv[i], "legacy")) legacy = 1;
        if (!strcmp(argv[i], "damage")) damage = 1;
        if (!strcmp(argv[i], "steal")) steal = 1;
        if (!strcmp(argv[i], "excl")) excl = 1;
    }
    const char *cmd = argv[1], *name = argv[2];
    if (!strcmp(cmd, "tx") && argc >= 5) {
        struct port p;
        open_port(&p, name, legacy);
        return do_tx(&p, (uint32_t)strtoul(argv[3], NULL, 0), (unsigned)strtoul(argv[4], NULL, 0), kind(argc > 5 ? argv[5] : NULL), 1);
    }
    if (!strcmp(cmd, "rx") && argc >= 5) {
        struct port p;
        open_port(&p, name, legacy);
        printf("ready\n");
        return do_rx(&p, (uint32_t)strtoul(argv[3], NULL, 0), atoi(argv[4]), kind(argc > 5 ? argv[5] : NULL));
    }
    if (!strcmp(cmd, "pipe-zerocopy") && argc >= 4) return do_pipe(name, (uint32_t)strtoul(argv[3], NULL, 0));
    if (!strcmp(cmd, "errors")) return do_errors(name);
    if (!strcmp(cmd, "dup") && argc >= 4) return do_dup(name, (uint32_t)strtoul(argv[3], NULL, 0));
    if (!strcmp(cmd, "extra") && argc >= 4) return do_extra(name, (uint32_t)strtoul(argv[3], NULL, 0));
    if (!strcmp(cmd, "fork") && argc >= 5) return do_fork(name, argv[3], (uint32_t)strtoul(argv[4], NULL, 0));
    if (!strcmp(cmd, "vnet")) return do_vnet(name);
    if (!strcmp(cmd, "pass") && argc >= 5) return do_pass(name, argv[3], (uint32_t)strtoul(argv[4], NULL, 0));
    if (!strcmp(cmd, "hold") && argc >= 4) {
        struct port p;
        if (reg(&p, name, legacy, NR_REG_ALL_NIC, 0) < 0) {
            printf("hold: %s\n", strerror(errno));
            return 3;
        }
        printf("holding\n");
        sleep((unsigned)atoi(argv[3]));
        close(p.fd);
        return 0;
    }
    fprintf(stderr, "nmapp: bad arguments\n");
    return 2;
}
