#define _GNU_SOURCE
#include "swale_sys.h"
#include "swale_atomics.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <linux/membarrier.h>

int swale_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); }

int swale_gettid(void) { return gettid(); }

int swale_set_thread_cpus(int tid, const int *cpus, int n) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < n; i++) {
        if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE) return -EINVAL;
        CPU_SET(cpus[i], &set);
    }
    return sched_setaffinity(tid, sizeof set, &set) < 0 ? -errno : 0;
}

int swale_thread_cpus(int tid, int *out, int max) {
    cpu_set_t set;
    if (sched_getaffinity(tid, sizeof set, &set) < 0) return -errno;
    int n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < max; cpu++)
        if (CPU_ISSET(cpu, &set)) out[n++] = cpu;
    return n;
}

int swale_current_cpu(void) { return sched_getcpu(); }

/* swale_atomics.h explains the asymmetric barrier. Registration belongs to the process image (the
 * kernel keeps it across fork and drops it at exec); the fork handler registers anyway, so a child
 * never believes in a registration it does not have. */
int swale_fenceless = 0;
static int swale_sleeps_membarrier = 0;
#ifndef MEMBARRIER_CMD_GET_REGISTRATIONS
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9) /* Linux 6.3; older uapi headers lack it */
#endif
static pthread_once_t swale_barrier_once = PTHREAD_ONCE_INIT;

static void swale_barrier_child(void) {
    swale_fenceless = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}

static void swale_barrier_init(void) {
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED)) return;
    /* A sleeper may say it uses membarrier only if the call works here (seccomp may refuse it). */
    swale_sleeps_membarrier = syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0;
    if (pthread_atfork(NULL, NULL, swale_barrier_child) != 0) return;
    swale_barrier_child();
}

int swale_barrier_register(void) {
    pthread_once(&swale_barrier_once, swale_barrier_init);
    return swale_fenceless;
}

int swale_barrier_sleeper(void) {
    pthread_once(&swale_barrier_once, swale_barrier_init);
    return swale_sleeps_membarrier;
}

int swale_barrier_registered(void) {
    long r = syscall(SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
    return r < 0 ? -errno : (r & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0;
}

void swale_barrier_heavy(void) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (swale_barrier_sleeper()) (void)syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
}

int swale_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

ssize_t swale_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    char control[CMSG_SPACE(sizeof(int) * 16)];
    if (nfds > 16) return -EINVAL;
    if (nfds > 0) {
        memset(control, 0, sizeof control);
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t swale_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    char control[CMSG_SPACE(sizeof(int) * 16)];
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    *nfds = 0;
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *in = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*nfds < maxfds) fds[(*nfds)++] = in[i];
            else close(in[i]); /* never leak what we cannot hand on */
        }
    }
    return n;
}

int swale_peer_cred(int sock, uint32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
    *pid = (uint32_t)cred.pid; *uid = cred.uid; *gid = cred.gid;
    return 0;
}

int swale_tap_open(const char *name, int vnet_hdr, char *out_name) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { int e = errno; close(fd); return -e; }
    memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
    return fd;
}

int swale_tap_set_offload(int fd, unsigned int offloads) { return ioctl(fd, TUNSETOFFLOAD, offloads) < 0 ? -errno : 0; }
int swale_tap_set_vnet_hdr_size(int fd, int size) { return ioctl(fd, TUNSETVNETHDRSZ, &size) < 0 ? -errno : 0; }
int swale_tap_set_persist(int fd, int persist) { return ioctl(fd, TUNSETPERSIST, persist) < 0 ? -errno : 0; }
unsigned int swale_tun_f_csum(void) { return TUN_F_CSUM; }

int swale_ioctl_socket(void) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int swale_ifindex_mtu(int sock, int ifindex) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_ifindex = ifindex;
    if (ioctl(sock, SIOCGIFNAME, &ifr) < 0) return -errno;
    if (ioctl(sock, SIOCGIFMTU, &ifr) < 0) return -errno;
    return ifr.ifr_mtu;
}

/* Generic receive offload on an interface (ETHTOOL_SGRO through SIOCETHTOOL): 0 or -errno. */
int swale_set_gro(const char *ifname, int on) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct ethtool_value ev = { .cmd = ETHTOOL_SGRO, .data = on ? 1 : 0 };
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ifr.ifr_data = (char *)&ev;
    int rc = ioctl(fd, SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int swale_get_gro(const char *ifname) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct ethtool_value ev = { .cmd = ETHTOOL_GGRO };
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ifr.ifr_data = (char *)&ev;
    int rc = ioctl(fd, SIOCETHTOOL, &ifr) < 0 ? -errno : (ev.data ? 1 : 0);
    close(fd);
    return rc;
}
unsigned int swale_tun_f_tso4(void) { return TUN_F_TSO4; }
unsigned int swale_tun_f_tso6(void) { return TUN_F_TSO6; }

/* ---- Kernel adapters (SwaleKernel) ---- */
#include <sched.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>

_Static_assert(sizeof(struct swale_tpacket2_hdr) == sizeof(struct tpacket2_hdr), "tpacket2_hdr");
_Static_assert(offsetof(struct swale_tpacket2_hdr, tp_mac) == offsetof(struct tpacket2_hdr, tp_mac), "tp_mac");
_Static_assert(offsetof(struct swale_tpacket2_hdr, tp_vlan_tpid) == offsetof(struct tpacket2_hdr, tp_vlan_tpid), "tp_vlan_tpid");
_Static_assert(SWALE_TPACKET2_SLL_OFFSET == TPACKET_ALIGN(sizeof(struct tpacket2_hdr)), "sockaddr_ll offset");
_Static_assert(SWALE_TP_STATUS_USER == TP_STATUS_USER && SWALE_TP_STATUS_LOSING == TP_STATUS_LOSING, "TP_STATUS");
_Static_assert(SWALE_TP_STATUS_VLAN_VALID == TP_STATUS_VLAN_VALID && SWALE_TP_STATUS_VLAN_TPID_VALID == TP_STATUS_VLAN_TPID_VALID, "TP_STATUS_VLAN");
_Static_assert(SWALE_PACKET_RX_RING == PACKET_RX_RING && SWALE_PACKET_STATISTICS == PACKET_STATISTICS, "PACKET_*");
_Static_assert(SWALE_PACKET_COPY_THRESH == PACKET_COPY_THRESH && SWALE_TP_STATUS_COPY == TP_STATUS_COPY, "PACKET_COPY_THRESH");
_Static_assert(SWALE_PACKET_VERSION == PACKET_VERSION && SWALE_PACKET_VNET_HDR == PACKET_VNET_HDR, "PACKET_*");
_Static_assert(SWALE_PACKET_QDISC_BYPASS == PACKET_QDISC_BYPASS && SWALE_PACKET_IGNORE_OUTGOING == PACKET_IGNORE_OUTGOING, "PACKET_*");
_Static_assert(SWALE_TPACKET_V2 == TPACKET_V2 && SWALE_PACKET_OUTGOING == PACKET_OUTGOING, "TPACKET_V2");
#ifdef PACKET_VNET_HDR_SZ
_Static_assert(SWALE_PACKET_VNET_HDR_SZ == PACKET_VNET_HDR_SZ, "PACKET_VNET_HDR_SZ");
#endif
_Static_assert(sizeof(struct swale_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr");

int swale_packet_open(void) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int swale_packet_setopt(int fd, int opt, int value) {
    return setsockopt(fd, SOL_PACKET, opt, &value, sizeof value) < 0 ? -errno : 0;
}

int swale_packet_rx_ring(int fd, unsigned int block_size, unsigned int block_nr, unsigned int frame_size, unsigned int frame_nr) {
    struct tpacket_req req = {.tp_block_size = block_size, .tp_block_nr = block_nr,
                              .tp_frame_size = frame_size, .tp_frame_nr = frame_nr};
    return setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0 ? -errno : 0;
}

int swale_packet_bind(int fd, int ifindex) {
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    return bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0 ? -errno : 0;
}

int swale_packet_promisc(int fd, int ifindex, int add) {
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = ifindex;
    mr.mr_type = PACKET_MR_PROMISC;
    int opt = add ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP;
    return setsockopt(fd, SOL_PACKET, opt, &mr, sizeof mr) < 0 ? -errno : 0;
}

int swale_packet_stats(int fd, unsigned int *packets, unsigned int *drops) {
    struct tpacket_stats st;
    socklen_t len = sizeof st;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0) return -errno;
    *packets = st.tp_packets;
    *drops = st.tp_drops;
    return 0;
}

int swale_recv_iov(int fd, struct iovec *iov, int n) {
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)n;
    ssize_t r = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    return r < 0 ? -errno : (int)r;
}

int swale_sendmmsg(int fd, struct swale_mmsghdr *msgs, unsigned int n, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgs, n, flags);
}

int swale_setns_net(int fd) { return setns(fd, CLONE_NEWNET) < 0 ? -errno : 0; }

int swale_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
    return err;
}

int swale_seal_region(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) < 0 ? -errno : 0;
}

int swale_region_is_sealed(int fd) {
    int s = fcntl(fd, F_GET_SEALS);
    if (s < 0) return -errno;
    return (s & F_SEAL_SHRINK) ? 1 : 0;
}

int swale_doorbell(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
}

int swale_doorbell_ring(int fd) {
    char b = 1;
    ssize_t n = send(fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    return (n == 1 || errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
}

uint64_t swale_doorbell_drain(int fd) {
    char buf[64];
    uint64_t count = 0;
    for (int i = 0; i < 1024; i++) {   /* bounded: a peer ringing forever cannot pin us here */
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) break;
        count++;
    }
    return count;
}

void swale_trim_heap(void) { malloc_trim(0); }
