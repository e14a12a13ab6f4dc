/*
 * interpose.c — /dev/netmap emulated in the process, on top of Swale (libswale-netmap.so).
 *
 * netmap programs reach the kernel only through a few calls on one descriptor: open("/dev/netmap"),
 * ioctl (NIOCCTRL requests, the legacy NIOCREGIF/NIOCGINFO, NIOCTXSYNC/NIOCRXSYNC), mmap,
 * poll/select/epoll and close. Preloaded, this library defines those calls; for any other
 * descriptor each passes straight to libc's (dlsym RTLD_NEXT), so the rest of the program, and the
 * Swift runtime that backs this library, see no difference.
 *
 *   open     "/dev/netmap" gives an eventfd as a placeholder descriptor, entered in the table.
 *   register opens the port or pipe end through SwaleClient (the Swift half, swale_nm_*), then
 *            puts the port's wake-up doorbell on the application's descriptor number (dup3), so
 *            poll/select/epoll on it wait on the real wake-up line. Pipes named the legacy way
 *            (NR_REG_PIPE_MASTER/SLAVE + a ring id) become "x{N" / "x}N"; NR_MONITOR_TX/RX become
 *            Swale's monitor ports ("x/t", "x/r", "x/rt"). Host rings and NR_REG_NULL do not exist
 *            on Swale: EOPNOTSUPP, as are VALE management requests and every option.
 *   mmap     returns this library's one mapping of the port's region: every port whose rings live
 *            in one region (a port and its pipes) reports the same nr_mem_id, and libnetmap then maps
 *            once and finds all of them there, as netmap's `bridge` and `lb` expect. The mapping
 *            spans the region's whole reserve, so a region that grows (more pipes) needs no remap.
 *   sync     NIOCTXSYNC / NIOCRXSYNC are the client library's txSync / rxSync.
 *   poll     (and ppoll) netmap's rule: a netmap descriptor is readable when its rx ring has slots between cur
 *            and tail after an rxsync, writable when its tx ring has after a txsync (skipped with
 *            NR_NO_TX_POLL). When none is ready the wake-up flags are raised, the rings checked
 *            again (no lost wake-up), and the real poll waits on the doorbells and the other fds.
 *            select and epoll_wait are the same rule over their own sets.
 *   copies   dup, dup2, dup3 and F_DUPFD copies name the same open (as the kernel's copies name
 *            one file); a registration puts the doorbell on every copy made before it.
 *   close    of the last copy waits (at most a second) for transmitted slots to be taken, then
 *            releases the port.
 *
 * Extra buffers (nr_extra_bufs, legacy nr_arg3) are asked of swaled with the open (at most 4096:
 * netmap may grant fewer) and listed from ni_bufs_head; swaled takes the list back when the port
 * closes. Virtio-net headers (NETMAP_REQ_PORT_HDR_SET, 12 bytes) are the switch's work, asked of
 * swaled (see "virtio-net headers" below).
 *
 * A register without NR_EXCLUSIVE shares the port: a second program registering it joins (its own
 * wake-up line, the same rings), as netmap binds a ring to several files; with NR_EXCLUSIVE a port
 * in use is refused (EBUSY) and keeps others out. A descriptor handed to another process
 * (SCM_RIGHTS) is recognised there at its first mmap or netmap ioctl (see "descriptor passing").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "swale_netmap.h"
#include "swale_atomics.h"
#include "swale_netmap_backend.h"

_Static_assert(sizeof(struct nmreq_header) == 88, "nmreq_header");
_Static_assert(sizeof(struct nmreq_register) == 56, "nmreq_register");
_Static_assert(offsetof(struct nmreq_register, nr_mem_id) == 32 && offsetof(struct nmreq_register, nr_flags) == 48, "nmreq_register");
_Static_assert(sizeof(struct nmreq_port_info_get) == 32, "nmreq_port_info_get");
_Static_assert(sizeof(struct nmreq_pools_info) == 64, "nmreq_pools_info");
_Static_assert(sizeof(struct nmreq) == 60, "legacy nmreq");
_Static_assert(offsetof(struct nmreq, nr_ringid) == 40 && offsetof(struct nmreq, nr_flags) == 52, "legacy nmreq");
_Static_assert(NIOCCTRL == 0xc0586997UL && NIOCREGIF == 0xc03c6992UL && NIOCTXSYNC == 0x6994 && NIOCRXSYNC == 0x6995, "ioctls");

/* ---- libc's own functions ---- */

#define REAL(fn) static __typeof__(fn) *real_##fn;
REAL(open) REAL(openat) REAL(ioctl) REAL(mmap) REAL(munmap) REAL(close) REAL(poll) REAL(ppoll) REAL(select) REAL(pselect)
REAL(epoll_ctl) REAL(epoll_wait) REAL(epoll_pwait) REAL(epoll_pwait2) REAL(dup) REAL(dup2) REAL(dup3) REAL(fcntl)

static pthread_once_t resolved = PTHREAD_ONCE_INIT;
static void resolve(void) {
#define R(fn) real_##fn = (__typeof__(real_##fn))dlsym(RTLD_NEXT, #fn);
    R(open) R(openat) R(ioctl) R(mmap) R(munmap) R(close) R(poll) R(ppoll) R(select) R(pselect) R(epoll_ctl) R(epoll_wait)
    R(epoll_pwait) R(epoll_pwait2) R(dup) R(dup2) R(dup3) R(fcntl)
}
#define REALS() pthread_once(&resolved, resolve)

/* ---- the table of netmap descriptors ---- */

#define MAX_FDS 65536

struct region {
    uint64_t id;
    char *base;
    size_t size;
    int refs;
    uint16_t mem_id;
    struct region *next;
};

#define MAX_COPIES 16 /* descriptors (dup, F_DUPFD) that name one /dev/netmap open */

struct nmfd {
    int registered;
    int ncopies; /* the descriptors that name it: it goes when the last is closed */
    int copies[MAX_COPIES];
    uint64_t flags; /* NR_* of the registration */
    struct swale_nm_port port;
    struct region *region;
    /* virtio-net header length (NETMAP_REQ_PORT_HDR_SET: 0 or 12) */
    uint32_t hdr_len;
};

static struct nmfd *table[MAX_FDS];
static struct region *regions;
/* `lock`: the region list. `state`: the entries' lifetime and the epoll members (see readiness). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t state = PTHREAD_RWLOCK_INITIALIZER;
static struct nmfd *put(int fd, struct nmfd *e);
static int verbose = -1;

static void say(const char *fmt, ...) {
    if (verbose < 0) verbose = getenv("SWALE_NETMAP_DEBUG") != NULL;
    if (!verbose) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "libswale-netmap: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static struct nmfd *lookup(int fd) { return fd >= 0 && fd < MAX_FDS ? __atomic_load_n(&table[fd], __ATOMIC_ACQUIRE) : NULL; }

/* fd's entry if a port is registered on it (use under the read side of `state`). */
static struct nmfd *registered(int fd) {
    struct nmfd *e = lookup(fd);
    return e && __atomic_load_n(&e->registered, __ATOMIC_ACQUIRE) ? e : NULL;
}

static void release(struct nmfd *e, int fd);
static pthread_rwlock_t state;

/* Removes `fd` from its entry's copies (write side held); the entry if that was its last descriptor. */
static struct nmfd *unlink_copy(int fd) {
    struct nmfd *e = __atomic_exchange_n(&table[fd], NULL, __ATOMIC_ACQ_REL);
    if (!e) return NULL;
    for (int i = 0; i < e->ncopies; i++)
        if (e->copies[i] == fd) {
            e->copies[i] = e->copies[--e->ncopies];
            break;
        }
    return e->ncopies == 0 ? e : NULL;
}

/* Enters `fd` for `e`; returns an entry left stale at that number (its descriptor closed behind our
 * back, e.g. by close_range), for the caller to release. */
static struct nmfd *put(int fd, struct nmfd *e) {
    pthread_rwlock_wrlock(&state);
    struct nmfd *stale = unlink_copy(fd);
    __atomic_store_n(&table[fd], e, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&state);
    return stale;
}

static int is_netmap_path(const char *path) { return path != NULL && strcmp(path, NETMAP_DEVICE) == 0; }

static int open_placeholder(int flags) {
    int fd = eventfd(0, EFD_NONBLOCK | ((flags & O_CLOEXEC) ? EFD_CLOEXEC : 0));
    if (fd < 0) return -1;
    if (fd >= MAX_FDS) {
        real_close(fd);
        errno = ENFILE;
        return -1;
    }
    struct nmfd *e = calloc(1, sizeof *e);
    if (!e) {
        real_close(fd);
        errno = ENOMEM;
        return -1;
    }
    e->ncopies = 1;
    e->copies[0] = fd;
    struct nmfd *stale = put(fd, e);
    if (stale) release(stale, fd);
    say("open /dev/netmap -> fd %d", fd);
    return fd;
}

/* Declares `mode`: open's optional argument after `flags`, passed only when flags create a file. */
#define MODE_ARG(flags)                                             \
    mode_t mode = 0;                                                \
    if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) { \
        va_list ap;                                                 \
        va_start(ap, flags);                                        \
        mode = va_arg(ap, mode_t);                                  \
        va_end(ap);                                                 \
    }

int open(const char *path, int flags, ...) {
    REALS();
    if (is_netmap_path(path)) return open_placeholder(flags);
    MODE_ARG(flags);
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open(path, flags); }

int openat(int dirfd, const char *path, int flags, ...) {
    REALS();
    if (is_netmap_path(path)) return open_placeholder(flags);
    MODE_ARG(flags);
    return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }

/* ---- registration ---- */

static struct region *region_ref(const struct swale_nm_port *p) {
    for (struct region *r = regions; r; r = r->next)
        if (r->id == p->region_id) {
            r->refs++;
            return r;
        }
    return NULL;
}

/* A region's nr_mem_id: from its identity, so processes that share a region (a port opened by two,
 * a descriptor passed) mostly agree on it; unique among this process's regions, never 0. */
static uint16_t mem_id_for(uint64_t id) {
    uint16_t m = (uint16_t)(id ^ id >> 16 ^ id >> 32 ^ id >> 48);
    for (;;) {
        if (m == 0) m = 1;
        struct region *r = regions;
        while (r && r->mem_id != m) r = r->next;
        if (!r) return m;
        m++;
    }
}

/* The one mapping of a region in this process, made on its first registration. */
static struct region *region_map(const struct swale_nm_port *p, int region_fd) {
    struct region *r = region_ref(p);
    if (r) return r;
    r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->base = real_mmap(NULL, p->memsize, PROT_READ | PROT_WRITE, MAP_SHARED, region_fd, 0);
    if (r->base == MAP_FAILED) {
        free(r);
        return NULL;
    }
    r->id = p->region_id;
    r->size = p->memsize;
    r->refs = 1;
    r->mem_id = mem_id_for(p->region_id);
    r->next = regions;
    regions = r;
    return r;
}

static void region_unref(struct region *r) {
    if (--r->refs > 0) return;
    for (struct region **pp = &regions; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    real_munmap(r->base, r->size);
    free(r);
}

/* A registered descriptor's port as it is now (copied under the read side of `state`). */
struct view {
    struct swale_nm_port port;
    uint16_t mem_id;
};

static int view(int fd, struct view *v) {
    pthread_rwlock_rdlock(&state);
    struct nmfd *e = registered(fd);
    if (e) {
        v->port = e->port;
        v->mem_id = e->region->mem_id;
    }
    pthread_rwlock_unlock(&state);
    return e != NULL;
}

static int install(int fd, struct swale_nm_port p, uint64_t flags, struct view *v);
static struct nmfd *take(int fd);
static int set_hdr(struct nmfd *e, uint32_t len);

/* Opens the port for `fd`; returns 0 (and the view) or an errno. Shared unless NR_EXCLUSIVE, as
 * netmap binds rings: a second shared open of a port joins it, an exclusive one is refused. */
static int do_register(int fd, const char *name, uint64_t flags, uint32_t extra, struct view *v) {
    if (view(fd, v)) return EBUSY;
    char err[256] = {0};
    struct swale_nm_port p;
    memset(&p, 0, sizeof p);
    pthread_rwlock_rdlock(&state);
    struct nmfd *placeholder = lookup(fd);
    uint32_t hdr_len = placeholder ? placeholder->hdr_len : 0; /* PORT_HDR_SET before registering */
    pthread_rwlock_unlock(&state);
    /* no lock held: Swift may poll its socket */
    int rc = swale_nm_open(name, extra, !(flags & NR_EXCLUSIVE), &p, err, sizeof err);
    if (rc != 0) {
        say("register %s: %s", name, err);
        return rc;
    }
    if (hdr_len) { /* the header asked for, or no registration: frames would be misread */
        rc = p.is_pipe ? EOPNOTSUPP : swale_nm_set_hdr(p.handle, hdr_len);
        if (rc) {
            say("register %s: virtio-net header %u: %s", name, hdr_len, strerror(rc));
            swale_nm_close(p.handle);
            return rc;
        }
    }
    rc = install(fd, p, flags, v);
    if (rc == 0) say("registered %s on fd %d (mem_id %u, %u slots)", name, fd, v->mem_id, p.slots);
    return rc;
}

/* Puts the port just opened on `fd`'s entry: the region mapped once per process, the port's
 * wake-up line on every copy of the descriptor. 0, or an errno (the port is closed). */
static int install(int fd, struct swale_nm_port p, uint64_t flags, struct view *v) {
    pthread_mutex_lock(&lock);
    struct region *r = region_map(&p, swale_nm_region_fd(p.handle));
    pthread_mutex_unlock(&lock);
    if (!r) {
        swale_nm_close(p.handle);
        return ENOMEM;
    }
    pthread_rwlock_wrlock(&state);
    struct nmfd *e = lookup(fd);
    if (!e || e->registered) { /* closed, or registered by another thread meanwhile */
        pthread_rwlock_unlock(&state);
        pthread_mutex_lock(&lock);
        region_unref(r);
        pthread_mutex_unlock(&lock);
        swale_nm_close(p.handle);
        return e ? EBUSY : EBADF;
    }
    /* The application's descriptors (and copies made before) become the port's doorbell, each
     * keeping its close-on-exec flag. */
    for (int i = 0; i < e->ncopies; i++) {
        int c = e->copies[i];
        int fdflags = real_fcntl(c, F_GETFD, NULL);
        if (real_dup3(p.notify_fd, c, (fdflags > 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
            int saved = errno;
            pthread_rwlock_unlock(&state);
            pthread_mutex_lock(&lock);
            region_unref(r);
            pthread_mutex_unlock(&lock);
            swale_nm_close(p.handle);
            return saved;
        }
    }
    e->port = p;
    e->region = r;
    e->flags = flags;
    __atomic_store_n(&e->registered, 1, __ATOMIC_RELEASE);
    v->port = p;
    v->mem_id = r->mem_id;
    pthread_rwlock_unlock(&state);
    return 0;
}

/* Descriptor passing. A descriptor another process registered and handed over (SCM_RIGHTS) is, in
 * this process, that open's wake-up line: an AF_UNIX datagram socket that is not in the table.
 * On the first netmap call on it (mmap, a netmap ioctl) swaled is asked which open it belongs to
 * (it looks at the descriptor through /proc) and this process joins that open. Returns 1 if `fd`
 * is a registered netmap descriptor now. */
static pthread_mutex_t adopting = PTHREAD_MUTEX_INITIALIZER;

static int adopt(int fd) {
    if (fd < 0 || fd >= MAX_FDS) return 0;
    int domain = 0, type = 0;
    socklen_t l = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) != 0 || domain != AF_UNIX) return 0;
    l = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) != 0 || type != SOCK_DGRAM) return 0;
    pthread_mutex_lock(&adopting); /* one thread asks; the others find the entry */
    if (lookup(fd)) {
        pthread_mutex_unlock(&adopting);
        return 1;
    }
    char err[256] = {0};
    struct swale_nm_port p;
    memset(&p, 0, sizeof p);
    int rc = swale_nm_adopt(fd, &p, err, sizeof err);
    if (rc != 0) {
        pthread_mutex_unlock(&adopting);
        say("fd %d is not a netmap descriptor given to this process: %s", fd, err);
        return 0;
    }
    struct nmfd *e = calloc(1, sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&adopting);
        swale_nm_close(p.handle);
        return 0;
    }
    e->ncopies = 1;
    e->copies[0] = fd;
    struct nmfd *stale = put(fd, e);
    if (stale) release(stale, fd);
    struct view v;
    rc = install(fd, p, 0, &v);
    if (rc != 0) {
        struct nmfd *x = take(fd);
        if (x) release(x, fd);
    }
    pthread_mutex_unlock(&adopting);
    if (rc == 0) say("adopted fd %d (mem_id %u, %u slots)", fd, v.mem_id, p.slots);
    return rc == 0;
}

static int is_netmap_ioctl(unsigned long req) {
    return req == NIOCCTRL || req == NIOCREGIF || req == NIOCGINFO || req == NIOCTXSYNC || req == NIOCRXSYNC;
}

/* netmap's name with the legacy pipe and monitor requests folded in. */
static int compose_name(char *out, size_t n, const char *name, size_t name_max, uint32_t mode, uint32_t ringid, uint64_t flags) {
    size_t len = strnlen(name, name_max);
    if (len == 0 || len == name_max) return EINVAL;
    int w;
    switch (mode) {
    case NR_REG_DEFAULT:
    case NR_REG_ALL_NIC:
        w = snprintf(out, n, "%.*s", (int)len, name);
        break;
    case NR_REG_ONE_NIC:
        if ((ringid & NETMAP_RING_MASK) != 0) return EINVAL; /* one ring pair per port */
        w = snprintf(out, n, "%.*s", (int)len, name);
        break;
    case NR_REG_PIPE_MASTER:
    case NR_REG_PIPE_SLAVE:
        w = snprintf(out, n, "%.*s%c%u", (int)len, name, mode == NR_REG_PIPE_MASTER ? '{' : '}', ringid & NETMAP_RING_MASK);
        break;
    default: /* host rings, NR_REG_NULL: not on Swale */
        return EOPNOTSUPP;
    }
    if (w < 0 || (size_t)w >= n) return ENAMETOOLONG;
    if (flags & NR_ZCOPY_MON) return EOPNOTSUPP;
    if (flags & (NR_MONITOR_TX | NR_MONITOR_RX)) {
        const char *suffix = (flags & NR_MONITOR_TX) && (flags & NR_MONITOR_RX) ? "/rt" : (flags & NR_MONITOR_TX) ? "/t" : "/r";
        if ((size_t)w + strlen(suffix) >= n) return ENAMETOOLONG;
        strcat(out, suffix);
    }
    return 0;
}

static int options_unsupported(struct nmreq_header *h) {
    int any = 0;
    for (struct nmreq_option *o = (struct nmreq_option *)(uintptr_t)h->nr_options; o;
         o = (struct nmreq_option *)(uintptr_t)o->nro_next) {
        o->nro_status = EOPNOTSUPP;
        any = 1;
    }
    return any;
}

/* PORT_INFO_GET and NIOCGINFO on an unregistered descriptor: open the port for a moment. */
static int port_info(const char *name, struct swale_nm_port *out) {
    char err[256];
    int rc = swale_nm_open(name, 0, 1, out, err, sizeof err);
    if (rc == 0) swale_nm_close(out->handle);
    return rc;
}

static int nioctrl(int fd, struct nmreq_header *h) {
    if (!h) return EFAULT;
    if (h->nr_version != NETMAP_API) return EINVAL;
    if (options_unsupported(h)) return EOPNOTSUPP;
    char name[NETMAP_REQ_IFNAMSIZ + 8];
    switch (h->nr_reqtype) {
    case NETMAP_REQ_REGISTER: {
        struct nmreq_register *r = (struct nmreq_register *)(uintptr_t)h->nr_body;
        if (!r) return EINVAL;
        int rc = compose_name(name, sizeof name, h->nr_name, NETMAP_REQ_IFNAMSIZ, r->nr_mode, r->nr_ringid, r->nr_flags);
        if (rc) return rc;
        struct view v;
        if ((rc = do_register(fd, name, r->nr_flags, r->nr_extra_bufs, &v))) return rc;
        r->nr_offset = v.port.nifp_offset;
        r->nr_memsize = v.port.memsize;
        r->nr_tx_slots = r->nr_rx_slots = v.port.slots;
        r->nr_tx_rings = r->nr_rx_rings = 1;
        r->nr_host_tx_rings = r->nr_host_rx_rings = 0;
        r->nr_mem_id = v.mem_id;
        r->nr_extra_bufs = v.port.extra_bufs;
        return 0;
    }
    case NETMAP_REQ_PORT_INFO_GET: {
        struct nmreq_port_info_get *r = (struct nmreq_port_info_get *)(uintptr_t)h->nr_body;
        if (!r) return EINVAL;
        struct view v = {.mem_id = 0};
        struct swale_nm_port p;
        int is_registered = view(fd, &v);
        if (is_registered) {
            p = v.port;
        } else {
            int rc = compose_name(name, sizeof name, h->nr_name, NETMAP_REQ_IFNAMSIZ, NR_REG_ALL_NIC, 0, 0);
            if (rc || (rc = port_info(name, &p))) return rc;
        }
        r->nr_memsize = p.memsize;
        r->nr_tx_slots = r->nr_rx_slots = p.slots;
        r->nr_tx_rings = r->nr_rx_rings = 1;
        r->nr_host_tx_rings = r->nr_host_rx_rings = 0;
        r->nr_mem_id = is_registered ? v.mem_id : 0;
        return 0;
    }
    case NETMAP_REQ_POOLS_INFO_GET: {
        struct nmreq_pools_info *r = (struct nmreq_pools_info *)(uintptr_t)h->nr_body;
        if (!r) return EINVAL;
        pthread_rwlock_rdlock(&state);
        struct nmfd *e = registered(fd);
        if (!e) { /* ask after registering: the pools are the port's region */
            pthread_rwlock_unlock(&state);
            return EINVAL;
        }
        uint32_t total = swale_nm_refresh(e->port.handle);
        r->nr_memsize = e->port.memsize;
        r->nr_mem_id = e->region->mem_id;
        r->nr_if_pool_offset = e->port.nifp_offset;
        r->nr_if_pool_objtotal = 1;
        r->nr_if_pool_objsize = SWALE_CSB_OFFSET;
        r->nr_ring_pool_offset = (uint64_t)((char *)e->port.tx - e->port.base);
        r->nr_ring_pool_objtotal = 2;
        r->nr_ring_pool_objsize = (uint32_t)(SWALE_RING_SLOT_OFFSET + e->port.slots * SWALE_SLOT_SIZE);
        r->nr_buf_pool_offset = 0;
        r->nr_buf_pool_objtotal = total;
        r->nr_buf_pool_objsize = e->port.buf_size;
        pthread_rwlock_unlock(&state);
        return 0;
    }
    case NETMAP_REQ_PORT_HDR_GET: {
        struct nmreq_port_hdr *r = (struct nmreq_port_hdr *)(uintptr_t)h->nr_body;
        if (!r) return EINVAL;
        pthread_rwlock_rdlock(&state);
        struct nmfd *e = lookup(fd);
        r->nr_hdr_len = e ? e->hdr_len : 0;
        pthread_rwlock_unlock(&state);
        return 0;
    }
    case NETMAP_REQ_PORT_HDR_SET: {
        struct nmreq_port_hdr *r = (struct nmreq_port_hdr *)(uintptr_t)h->nr_body;
        if (!r) return EINVAL;
        pthread_rwlock_rdlock(&state); /* the entry stays while swaled is asked */
        struct nmfd *e = lookup(fd);
        int rc = e ? set_hdr(e, r->nr_hdr_len) : EBADF;
        pthread_rwlock_unlock(&state);
        return rc;
    }
    case NETMAP_REQ_VALE_ATTACH:
    case NETMAP_REQ_VALE_DETACH:
    case NETMAP_REQ_VALE_LIST:
    case NETMAP_REQ_VALE_NEWIF:
    case NETMAP_REQ_VALE_DELIF:
    case NETMAP_REQ_VALE_POLLING_ENABLE:
    case NETMAP_REQ_VALE_POLLING_DISABLE:
    case NETMAP_REQ_SYNC_KLOOP_START:
    case NETMAP_REQ_SYNC_KLOOP_STOP:
    case NETMAP_REQ_CSB_ENABLE:
        return EOPNOTSUPP; /* swalectl manages bridges; there is no kernel loop to start */
    default:
        return EINVAL;
    }
}

static int legacy(int fd, unsigned long req, struct nmreq *r) {
    if (!r) return EFAULT;
    if (r->nr_version < 11 || r->nr_version > NETMAP_API) return EINVAL;
    if (r->nr_cmd != 0) return EOPNOTSUPP;
    uint32_t mode = r->nr_flags & NR_REG_MASK;
    uint32_t ringid = r->nr_ringid;
    if (mode == NR_REG_DEFAULT) { /* the oldest form: the ring in nr_ringid */
        if (ringid & NETMAP_SW_RING) return EOPNOTSUPP;
        mode = (ringid & NETMAP_HW_RING) ? NR_REG_ONE_NIC : NR_REG_ALL_NIC;
    }
    char name[40];
    int rc = compose_name(name, sizeof name, r->nr_name, sizeof r->nr_name, mode, ringid, r->nr_flags & ~(uint64_t)NR_REG_MASK);
    if (rc) return rc;
    struct swale_nm_port p;
    if (req == NIOCREGIF) {
        uint64_t flags = r->nr_flags & ~(uint64_t)NR_REG_MASK;
        if (ringid & NETMAP_NO_TX_POLL) flags |= NR_NO_TX_POLL;
        struct view v;
        if ((rc = do_register(fd, name, flags, r->nr_arg3, &v))) return rc;
        p = v.port;
        r->nr_arg2 = v.mem_id;
        r->nr_arg3 = v.port.extra_bufs;
    } else {
        struct view v;
        if (view(fd, &v)) {
            p = v.port;
        } else if ((rc = port_info(name, &p))) {
            return rc;
        }
    }
    if (p.memsize > UINT32_MAX || p.nifp_offset > UINT32_MAX) return EOVERFLOW;
    r->nr_offset = (uint32_t)p.nifp_offset;
    r->nr_memsize = (uint32_t)p.memsize;
    r->nr_tx_slots = r->nr_rx_slots = p.slots;
    r->nr_tx_rings = r->nr_rx_rings = 1;
    return 0;
}

/* ---- virtio-net headers ----
 *
 * NETMAP_REQ_PORT_HDR_SET with 12 asks swaled to make the port a header port: the switch reads a
 * 12-byte virtio_net_hdr_v1 in front of every frame the application sends and writes one in front
 * of every frame it delivers (GSO frames whole, a zeroed one before plain frames), as VALE does
 * for a port with nr_hdr_len. It has to be the switch: Swale's rings move without syncs (tail and
 * head are read and written in shared memory), so no conversion at the syncs could be in time.
 * 10, the legacy header, is refused (EOPNOTSUPP): Swale's rings carry the 12-byte one. Set before
 * registering, the length is applied at registration. */

static int set_hdr(struct nmfd *e, uint32_t len) {
    if (len != 0 && len != 10 && len != 12) return EINVAL; /* as netmap */
    if (len == 10) return EOPNOTSUPP;
    if (!e->registered) {
        e->hdr_len = len; /* applied when it registers */
        return 0;
    }
    if (e->port.is_pipe) return EOPNOTSUPP; /* VALE ports only, as netmap */
    int rc = swale_nm_set_hdr(e->port.handle, len);
    if (rc == 0) e->hdr_len = len;
    return rc;
}

static int sync_fd(int fd, int tx) {
    pthread_rwlock_rdlock(&state);
    struct nmfd *e = registered(fd);
    if (e) {
        if (tx) swale_nm_txsync(e->port.handle);
        else swale_nm_rxsync(e->port.handle);
    }
    pthread_rwlock_unlock(&state);
    return e ? 0 : ENXIO;
}

int ioctl(int fd, unsigned long req, ...) {
    REALS();
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (!lookup(fd) && !(is_netmap_ioctl(req) && adopt(fd))) return real_ioctl(fd, req, arg);
    int rc;
    switch (req) {
    case NIOCCTRL: rc = nioctrl(fd, arg); break;
    case NIOCREGIF:
    case NIOCGINFO: rc = legacy(fd, req, arg); break;
    case NIOCTXSYNC: rc = sync_fd(fd, 1); break;
    case NIOCRXSYNC: rc = sync_fd(fd, 0); break;
    default: return real_ioctl(fd, req, arg);
    }
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

/* ---- the mapping ---- */

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    REALS();
    if (!lookup(fd) && !adopt(fd)) return real_mmap(addr, len, prot, flags, fd, off);
    pthread_rwlock_rdlock(&state);
    struct nmfd *e = registered(fd);
    char *base = e ? e->region->base : NULL;
    size_t size = e ? e->region->size : 0;
    pthread_rwlock_unlock(&state);
    if (!base) {
        errno = ENXIO;
        return MAP_FAILED;
    }
    if (off != 0 || len > size || (flags & MAP_FIXED)) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    return base;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) __attribute__((alias("mmap")));

int munmap(void *addr, size_t len) {
    REALS();
    pthread_mutex_lock(&lock);
    for (struct region *r = regions; r; r = r->next)
        if ((char *)addr == r->base) { /* ours: released with the last descriptor of the region */
            pthread_mutex_unlock(&lock);
            return 0;
        }
    pthread_mutex_unlock(&lock);
    return real_munmap(addr, len);
}

/* ---- readiness ----
 *
 * Entries live as long as their descriptor: close takes an entry out of the table under the write
 * side of `state` and releases it afterwards; everything that uses an entry (syncs, readiness,
 * the wake-up flags, mmap) holds the read side and looks the descriptor up again after any wait,
 * so no entry is used after its close, and two closes of one descriptor release it once. */

static inline int ring_ready(struct swale_ring *r) {
    return __atomic_load_n(&r->cur, __ATOMIC_RELAXED) != __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

/* netmap's poll rule for one descriptor: syncs, then POLLIN / POLLOUT as the rings say. */
static short nm_revents(struct nmfd *e, short events) {
    short rev = 0;
    if (events & (POLLOUT | POLLWRNORM)) {
        if (!(e->flags & NR_NO_TX_POLL)) swale_nm_txsync(e->port.handle);
        if (ring_ready(e->port.tx)) rev |= events & (POLLOUT | POLLWRNORM);
    }
    if (events & (POLLIN | POLLRDNORM)) {
        swale_nm_rxsync(e->port.handle);
        if (ring_ready(e->port.rx)) rev |= events & (POLLIN | POLLRDNORM);
    }
    return rev;
}

/* Raises (on) or lowers the wake-up flags: counts, as the client library keeps them, since the
 * holders of a shared port share one control block. Every raise is followed by one lowering. The
 * caller orders them before its next look at the rings with one armed() for the whole set. */
static void arm(struct nmfd *e, short events, int on) {
    uint32_t *rx = &e->port.csb->app_rx_waiting, *tx = &e->port.csb->app_tx_waiting;
    if (events & (POLLIN | POLLRDNORM)) {
        if (on) swale_add_relaxed(rx, 1);
        else swale_sub_relaxed(rx, 1);
    }
    if (events & (POLLOUT | POLLWRNORM)) {
        if (on) swale_add_relaxed(tx, 1);
        else swale_sub_relaxed(tx, 1);
    }
}

/* After a set's flags were raised: the sleeper's side of the handshake (the publishers' side may
 * be a compiler barrier, swale_atomics.h), once for the whole set. */
static void armed(int arming) {
    if (arming == 1) swale_barrier_heavy();
    else if (arming == 0) __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void drain(int fd) {
    char buf[64];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void) { return now_ns() / 1000000; }

/* One pass over a poll set (read side held): netmap descriptors' revents from their rings, the
 * wake-up flags raised (arm 1) or lowered (arm 0) when asked; returns how many are ready. */
static int nm_pass(struct pollfd *fds, nfds_t n, int arming) {
    int ready = 0;
    pthread_rwlock_rdlock(&state);
    if (arming >= 0) {
        for (nfds_t i = 0; i < n; i++) {
            struct nmfd *e = registered(fds[i].fd);
            if (e) arm(e, fds[i].events, arming);
        }
        armed(arming);
    }
    for (nfds_t i = 0; arming != 0 && i < n; i++) {
        struct nmfd *e = registered(fds[i].fd);
        if (e && (fds[i].revents = nm_revents(e, fds[i].events))) ready++;
    }
    pthread_rwlock_unlock(&state);
    return ready;
}

/* How long a waiter looks again (yielding the core) before it sleeps: under load the other side
 * answers within microseconds, and a sleep costs a doorbell and two system calls. The client
 * library's rule and setting (SWALE_BUSY_POLL_US, default 50). */
static int64_t busy_poll_ns = -1;

/* Yields and asks `ready` again until it says yes (1) or the busy-poll time is over (0). */
static int busy_poll(int (*ready)(void *), void *ctx) {
    if (busy_poll_ns < 0) {
        const char *v = getenv("SWALE_BUSY_POLL_US");
        busy_poll_ns = v && *v ? atoll(v) * 1000 : 50000;
    }
    if (busy_poll_ns == 0) return 0;
    int64_t until = now_ns() + busy_poll_ns;
    do {
        sched_yield();
        if (ready(ctx)) return 1;
    } while (now_ns() < until);
    return 0;
}

struct poll_set {
    struct pollfd *fds;
    nfds_t n;
};

static int poll_set_ready(void *ctx) {
    struct poll_set *p = ctx;
    return nm_pass(p->fds, p->n, -1) > 0;
}

static int nm_poll(struct pollfd *fds, nfds_t n, int timeout) {
    int64_t deadline = timeout < 0 ? -1 : now_ms() + timeout;
    struct pollfd *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    int result;
    for (;;) {
        for (nfds_t i = 0; i < n; i++) fds[i].revents = 0;
        int ready = nm_pass(fds, n, -1);
        int64_t left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left < 0) left = 0;
        int wait = ready ? 0 : (int)(left > INT32_MAX ? INT32_MAX : left);
        struct poll_set set = {fds, n};
        if (wait != 0 && busy_poll(poll_set_ready, &set)) continue; /* ready without sleeping: count it next pass */
        int armed = 0;
        if (wait != 0) {
            /* Raised, then the rings once more: a frame that came before the flag was seen is not slept on. */
            armed = 1;
            if (nm_pass(fds, n, 1) > 0) wait = 0;
        }
        int netmap = 0;
        for (nfds_t i = 0; i < n; i++) {
            tmp[i] = fds[i];
            tmp[i].revents = 0;
            if (registered(fds[i].fd)) {
                tmp[i].events = POLLIN; /* the doorbell */
                netmap = 1;
            }
        }
        (void)netmap;
        int r = real_poll(tmp, n, wait);
        int saved = errno;
        if (armed) nm_pass(fds, n, 0);
        for (nfds_t i = 0; i < n; i++)
            if (registered(fds[i].fd) && (tmp[i].revents & POLLIN)) drain(fds[i].fd);
        if (r < 0) {
            errno = saved;
            result = -1;
            break;
        }
        /* The rings decide for netmap descriptors; the kernel for the rest. */
        int count = 0;
        pthread_rwlock_rdlock(&state);
        for (nfds_t i = 0; i < n; i++) {
            struct nmfd *e = registered(fds[i].fd);
            fds[i].revents = e ? nm_revents(e, fds[i].events) : tmp[i].revents;
            if (fds[i].revents) count++;
        }
        pthread_rwlock_unlock(&state);
        if (count > 0 || wait == 0 || (deadline >= 0 && now_ms() >= deadline)) {
            result = count;
            break;
        }
    }
    free(tmp);
    return result;
}

static int has_netmap(struct pollfd *fds, nfds_t n) {
    if (!fds) return 0;
    for (nfds_t i = 0; i < n; i++)
        if (registered(fds[i].fd)) return 1;
    return 0;
}

int poll(struct pollfd *fds, nfds_t n, int timeout) {
    REALS();
    if (!has_netmap(fds, n)) return real_poll(fds, n, timeout);
    return nm_poll(fds, n, timeout);
}

static int ms_of(const struct timespec *ts) {
    if (!ts) return -1;
    int64_t ms = (int64_t)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* ppoll on netmap descriptors: the timeout rounded up to milliseconds; the signal mask is applied
 * around the wait (a signal it unblocks interrupts the wait as it would interrupt ppoll). */
int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask) {
    REALS();
    if (!has_netmap(fds, n)) return real_ppoll(fds, n, ts, mask);
    sigset_t saved;
    if (mask) pthread_sigmask(SIG_SETMASK, mask, &saved);
    int r = nm_poll(fds, n, ms_of(ts));
    int e = errno;
    if (mask) pthread_sigmask(SIG_SETMASK, &saved, NULL);
    errno = e;
    return r;
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask, size_t len) {
    (void)len;
    return ppoll(fds, n, ts, mask);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t len) {
    (void)len;
    return poll(fds, n, timeout);
}

/* select and pselect through nm_poll. Only the first FD_SETSIZE descriptors are looked at for
 * netmap ones (an fd_set holds no more); a set without any goes to the kernel unchanged. */
static int nm_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int timeout) {
    struct pollfd *p = calloc((size_t)nfds, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    nfds_t n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = 0;
        if (rd && FD_ISSET(fd, rd)) ev |= POLLIN;
        if (wr && FD_ISSET(fd, wr)) ev |= POLLOUT;
        if (ex && FD_ISSET(fd, ex)) ev |= POLLPRI;
        if (ev) p[n++] = (struct pollfd){.fd = fd, .events = ev};
    }
    int r = nm_poll(p, n, timeout);
    if (r >= 0) {
        int count = 0;
        if (rd) FD_ZERO(rd);
        if (wr) FD_ZERO(wr);
        if (ex) FD_ZERO(ex);
        for (nfds_t i = 0; i < n; i++) {
            if (p[i].revents & POLLNVAL) {
                free(p);
                errno = EBADF;
                return -1;
            }
            if (rd && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) { FD_SET(p[i].fd, rd); count++; }
            if (wr && (p[i].revents & (POLLOUT | POLLERR))) { FD_SET(p[i].fd, wr); count++; }
            if (ex && (p[i].revents & POLLPRI)) { FD_SET(p[i].fd, ex); count++; }
        }
        r = count;
    }
    free(p);
    return r;
}

static int select_has_netmap(int nfds, fd_set *rd, fd_set *wr) {
    for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
        if (registered(fd) && ((rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)))) return 1;
    return 0;
}

int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv) {
    REALS();
    if (nfds < 0 || !select_has_netmap(nfds, rd, wr)) return real_select(nfds, rd, wr, ex, tv);
    int timeout = -1;
    if (tv) {
        int64_t ms = (int64_t)tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000;
        timeout = ms > INT32_MAX ? INT32_MAX : (int)ms;
    }
    int r = nm_select(nfds > FD_SETSIZE ? FD_SETSIZE : nfds, rd, wr, ex, timeout);
    if (tv && r >= 0) tv->tv_sec = tv->tv_usec = 0; /* Linux leaves the time not slept; we report none */
    return r;
}

int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts, const sigset_t *mask) {
    REALS();
    if (nfds < 0 || !select_has_netmap(nfds, rd, wr)) return real_pselect(nfds, rd, wr, ex, ts, mask);
    sigset_t saved;
    if (mask) pthread_sigmask(SIG_SETMASK, mask, &saved);
    int r = nm_select(nfds > FD_SETSIZE ? FD_SETSIZE : nfds, rd, wr, ex, ms_of(ts));
    int e = errno;
    if (mask) pthread_sigmask(SIG_SETMASK, &saved, NULL);
    errno = e;
    return r;
}

/* ---- epoll ---- */

/* netmap descriptors in an epoll set: what the application asked for, with its data (under `state`). */
struct member {
    int epfd, fd;
    uint32_t events;
    epoll_data_t data;
    struct member *next;
};
static struct member *members;
static int member_count;
#define TAG 0x5357414c45000000ULL /* "SWALE": our data on netmap descriptors in the kernel's set */

static short poll_events(uint32_t ev) { return (short)((ev & EPOLLIN ? POLLIN : 0) | (ev & EPOLLOUT ? POLLOUT : 0)); }

/* Drops what close(fd) ends: fd's memberships, or the whole set if fd was an epoll set (write side held). */
static void forget_members(int fd) {
    for (struct member **pp = &members; *pp;) {
        if ((*pp)->fd == fd || (*pp)->epfd == fd) {
            struct member *m = *pp;
            *pp = m->next;
            free(m);
            member_count--;
        } else {
            pp = &(*pp)->next;
        }
    }
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
    REALS();
    if (!registered(fd)) return real_epoll_ctl(epfd, op, fd, ev);
    if (op != EPOLL_CTL_DEL && !ev) {
        errno = EFAULT;
        return -1;
    }
    struct epoll_event ours = {.events = EPOLLIN, .data.u64 = TAG | (uint64_t)fd};
    int r = real_epoll_ctl(epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &ours);
    if (r < 0) return r;
    pthread_rwlock_wrlock(&state);
    struct member **pp = &members;
    while (*pp && !((*pp)->epfd == epfd && (*pp)->fd == fd)) pp = &(*pp)->next;
    if (op == EPOLL_CTL_DEL) {
        if (*pp) {
            struct member *m = *pp;
            *pp = m->next;
            free(m);
            member_count--;
        }
    } else {
        struct member *m = *pp ? *pp : calloc(1, sizeof *m);
        if (m) {
            m->epfd = epfd;
            m->fd = fd;
            m->events = ev->events;
            m->data = ev->data;
            if (!*pp) {
                m->next = members;
                members = m;
                member_count++;
            }
        }
    }
    pthread_rwlock_unlock(&state);
    return 0;
}

/* One pass over an epoll set's netmap members (read side held by the caller). */
static int epoll_pass(int epfd, struct epoll_event *out, int max, int arming) {
    int k = 0;
    if (arming >= 0) {
        for (struct member *m = members; m; m = m->next) {
            struct nmfd *e = m->epfd == epfd ? registered(m->fd) : NULL;
            if (e) arm(e, poll_events(m->events), arming);
        }
        armed(arming);
    }
    for (struct member *m = members; m && arming != 0; m = m->next) {
        if (m->epfd != epfd) continue;
        struct nmfd *e = registered(m->fd);
        if (!e) continue;
        short want = poll_events(m->events);
        if (k >= max) break;
        short rev = nm_revents(e, want);
        if (rev) out[k++] = (struct epoll_event){.events = (rev & POLLIN ? EPOLLIN : 0) | (rev & POLLOUT ? EPOLLOUT : 0), .data = m->data};
    }
    return k;
}

struct epoll_set {
    int epfd;
    struct epoll_event *scratch;
    int max;
};

static int epoll_set_ready(void *ctx) {
    struct epoll_set *e = ctx;
    pthread_rwlock_rdlock(&state);
    int k = epoll_pass(e->epfd, e->scratch, e->max, -1);
    pthread_rwlock_unlock(&state);
    return k > 0;
}

static int nm_epoll(int epfd, struct epoll_event *out, int max, int timeout, const sigset_t *mask) {
    if (max <= 0) {
        errno = EINVAL;
        return -1;
    }
    int64_t deadline = timeout < 0 ? -1 : now_ms() + timeout;
    for (;;) {
        pthread_rwlock_rdlock(&state);
        int k = epoll_pass(epfd, out, max, -1);
        pthread_rwlock_unlock(&state);
        int64_t left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left < 0) left = 0;
        int wait = k ? 0 : (int)(left > INT32_MAX ? INT32_MAX : left);
        struct epoll_set set = {epfd, out, max};
        if (wait != 0 && busy_poll(epoll_set_ready, &set)) continue; /* ready without sleeping */
        int armed = 0;
        if (wait != 0) {
            /* Raised, then the rings once more, as poll does: no frame slept on. */
            armed = 1;
            pthread_rwlock_rdlock(&state);
            epoll_pass(epfd, out, max, 1);
            k = epoll_pass(epfd, out, max, -1);
            pthread_rwlock_unlock(&state);
            if (k) wait = 0;
        }
        struct epoll_event got[64];
        int room = max - k < 64 ? max - k : 64;
        int r = room > 0 ? real_epoll_pwait(epfd, got, room, wait, mask) : 0;
        int saved = errno;
        if (armed) {
            pthread_rwlock_rdlock(&state);
            epoll_pass(epfd, out, max, 0);
            pthread_rwlock_unlock(&state);
        }
        for (int i = 0; i < r; i++) {
            if ((got[i].data.u64 & ~0xffffffULL) == TAG)
                drain((int)(got[i].data.u64 & 0xffffff)); /* a doorbell: the rings say on the next pass */
            else
                out[k++] = got[i];
        }
        if (r < 0) {
            errno = saved;
            return k ? k : -1;
        }
        if (k > 0 || wait == 0 || (deadline >= 0 && now_ms() >= deadline)) return k;
    }
}

static int has_members(int epfd) {
    if (__atomic_load_n(&member_count, __ATOMIC_RELAXED) == 0) return 0;
    pthread_rwlock_rdlock(&state);
    struct member *m = members;
    while (m && m->epfd != epfd) m = m->next;
    pthread_rwlock_unlock(&state);
    return m != NULL;
}

int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout) {
    REALS();
    if (!has_members(epfd)) return real_epoll_wait(epfd, ev, max, timeout);
    return nm_epoll(epfd, ev, max, timeout, NULL);
}

int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
    REALS();
    if (!has_members(epfd)) return real_epoll_pwait(epfd, ev, max, timeout, mask);
    return nm_epoll(epfd, ev, max, timeout, mask);
}

int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts, const sigset_t *mask) {
    REALS();
    if (!has_members(epfd)) return real_epoll_pwait2(epfd, ev, max, ts, mask);
    return nm_epoll(epfd, ev, max, ms_of(ts), mask);
}

/* ---- close, and descriptors replaced by dup2/dup3 ---- */

/* Takes fd out (and what close(fd) ends in epoll sets); its entry, for the caller to release, if
 * fd was the last descriptor naming it. */
static struct nmfd *take(int fd) {
    struct nmfd *e = NULL;
    if (fd < 0 || fd >= MAX_FDS) return NULL;
    if (!lookup(fd) && __atomic_load_n(&member_count, __ATOMIC_RELAXED) == 0) return NULL;
    pthread_rwlock_wrlock(&state);
    e = unlink_copy(fd);
    if (member_count) forget_members(fd);
    pthread_rwlock_unlock(&state);
    return e;
}

/* newfd, just made a copy of oldfd by the kernel, names oldfd's entry too. */
static int add_copy(int oldfd, int newfd) {
    if (newfd < 0) return newfd;
    pthread_rwlock_wrlock(&state);
    struct nmfd *e = lookup(oldfd);
    if (!e) {
        pthread_rwlock_unlock(&state);
        return newfd;
    }
    if (newfd >= MAX_FDS || e->ncopies == MAX_COPIES) {
        pthread_rwlock_unlock(&state);
        real_close(newfd);
        errno = EMFILE;
        return -1;
    }
    struct nmfd *stale = unlink_copy(newfd);
    e->copies[e->ncopies++] = newfd;
    __atomic_store_n(&table[newfd], e, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&state);
    if (stale) release(stale, newfd);
    return newfd;
}

/* Frames already transmitted reach the switch or the peer before the port goes (at most 1 s). */
static void release(struct nmfd *e, int fd) {
    if (e->registered) {
        int64_t until = now_ms() + 1000;
        while (nm_tx_pending(e->port.tx) && now_ms() < until) {
            swale_nm_txsync(e->port.handle);
            usleep(100);
        }
        swale_nm_close(e->port.handle);
        pthread_mutex_lock(&lock);
        region_unref(e->region);
        pthread_mutex_unlock(&lock);
        say("closed fd %d", fd);
    }
    free(e);
}

int close(int fd) {
    REALS();
    struct nmfd *e = take(fd);
    if (e) release(e, fd);
    return real_close(fd);
}

/* Copies of a netmap descriptor name the same open (as the kernel's copies name one file); dup2 and
 * dup3 onto a netmap descriptor close that one first, as the kernel does with the file it held. */
int dup(int oldfd) {
    REALS();
    int newfd = real_dup(oldfd);
    return lookup(oldfd) ? add_copy(oldfd, newfd) : newfd;
}

int dup2(int oldfd, int newfd) {
    REALS();
    if (oldfd != newfd) {
        struct nmfd *e = take(newfd);
        if (e) release(e, newfd);
    }
    int r = real_dup2(oldfd, newfd);
    return r >= 0 && oldfd != newfd && lookup(oldfd) ? add_copy(oldfd, r) : r;
}

int dup3(int oldfd, int newfd, int flags) {
    REALS();
    if (oldfd != newfd) {
        struct nmfd *e = take(newfd);
        if (e) release(e, newfd);
    }
    int r = real_dup3(oldfd, newfd, flags);
    return r >= 0 && lookup(oldfd) ? add_copy(oldfd, r) : r;
}

/* fcntl: F_DUPFD and F_DUPFD_CLOEXEC copy like dup; everything else is libc's. The third argument
 * is passed on as the register it came in (an int or a pointer, as fcntl's callers pass it). */
int fcntl(int fd, int cmd, ...) {
    REALS();
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = real_fcntl(fd, cmd, arg);
    if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && r >= 0 && lookup(fd)) return add_copy(fd, r);
    return r;
}

int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));
