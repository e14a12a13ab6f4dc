/*
 * swale_sys.h — the thin shim for what Swift does not import: memfd_create and its seals, the
 * doorbell socketpairs, TUNSETIFF and the other TUN ioctls, SIOCETHTOOL (GRO), SCM_RIGHTS
 * control-message arithmetic, AF_PACKET options and TPACKET structures, sendmmsg, setns.
 * Functions only forward (and turn -1/errno into -errno); no logic here. Linux only; nothing
 * here depends on the CPU architecture.
 */
#ifndef SWALE_SYS_H
#define SWALE_SYS_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/epoll.h>

int swale_memfd_create(const char *name);
/* The calling thread's id (gettid is not visible to Swift through Glibc). */
int swale_gettid(void);
/* Lets thread tid (0: the caller) run only on the n CPUs listed (sched_setaffinity; CPU_SET is a
 * macro Swift cannot call); 0 or -errno (EINVAL: none of them is online and allowed, or one is
 * beyond CPU_SETSIZE). */
int swale_set_thread_cpus(int tid, const int *cpus, int n);
/* The CPUs thread tid (0: the caller) may run on, ascending, into out (at most max); the count or -errno. */
int swale_thread_cpus(int tid, int *out, int max);
/* The CPU the calling thread runs on now. */
int swale_current_cpu(void);
/* Names the calling thread (15 bytes kept; shown by top -H, ps -L). */
int swale_set_thread_name(const char *name);

/* Sends buf and up to nfds descriptors in one message; returns bytes sent or -errno. */
ssize_t swale_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/* Receives into buf; descriptors land in fds (at most maxfds, *nfds set). Returns bytes or -errno. */
ssize_t swale_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds);
/* Peer credentials of a UNIX socket. */
int swale_peer_cred(int sock, uint32_t *pid, uint32_t *uid, uint32_t *gid);

/* TUN/TAP: opens /dev/net/tun and attaches a TAP device named name (created if missing).
 * flags: 1 = IFF_VNET_HDR. On success returns the fd and writes the kernel's name into out (16 bytes). */
int swale_tap_open(const char *name, int vnet_hdr, char *out_name);
int swale_tap_set_offload(int fd, unsigned int offloads);
int swale_tap_set_vnet_hdr_size(int fd, int size);
int swale_tap_set_persist(int fd, int persist);
/* A close-on-exec AF_UNIX datagram socket to ask interface ioctls through; the fd or -errno. */
int swale_ioctl_socket(void);
/* The MTU of the interface with this ifindex, in the network namespace of socket sock
 * (SIOCGIFNAME, then SIOCGIFMTU: by index, so a rename does not lose it); the MTU or -errno. */
int swale_ifindex_mtu(int sock, int ifindex);
/* GRO on a netdev (SIOCETHTOOL); returns 0 or -errno. */
int swale_set_gro(const char *ifname, int on);
/* Whether GRO is on (ETHTOOL_GGRO): 1, 0 or -errno. */
int swale_get_gro(const char *ifname);
unsigned int swale_tun_f_csum(void);
unsigned int swale_tun_f_tso4(void);
unsigned int swale_tun_f_tso6(void);

/* ---- Kernel adapters (SwaleKernel): AF_PACKET with a TPACKET_V2 mmap ring, sendmmsg, setns. ----
 * Swift does not import linux/if_packet.h, struct mmsghdr or setns (they need _GNU_SOURCE or are
 * kernel headers); these mirror the kernel ABI and shim.c checks them against the real headers. */
#include <sys/socket.h>

/* struct tpacket2_hdr (linux/if_packet.h). */
struct swale_tpacket2_hdr {
    uint32_t tp_status;
    uint32_t tp_len;
    uint32_t tp_snaplen;
    uint16_t tp_mac;
    uint16_t tp_net;
    uint32_t tp_sec;
    uint32_t tp_nsec;
    uint16_t tp_vlan_tci;
    uint16_t tp_vlan_tpid;
    uint8_t tp_padding[4];
};
#define SWALE_TP_STATUS_KERNEL 0
#define SWALE_TP_STATUS_USER 1
#define SWALE_TP_STATUS_COPY 2
#define SWALE_TP_STATUS_LOSING 4
#define SWALE_TP_STATUS_VLAN_VALID 0x10
#define SWALE_TP_STATUS_VLAN_TPID_VALID 0x40
/* Offset of the struct sockaddr_ll that follows a tpacket2_hdr in a ring frame. */
#define SWALE_TPACKET2_SLL_OFFSET 32

/* SOL_PACKET options (linux/if_packet.h). PACKET_VNET_HDR_SZ is Linux 6.2+ and missing from older headers. */
#define SWALE_PACKET_RX_RING 5
#define SWALE_PACKET_STATISTICS 6
#define SWALE_PACKET_COPY_THRESH 7
#define SWALE_PACKET_VERSION 10
#define SWALE_PACKET_VNET_HDR 15
#define SWALE_PACKET_QDISC_BYPASS 20
#define SWALE_PACKET_IGNORE_OUTGOING 23
#define SWALE_PACKET_VNET_HDR_SZ 24
#define SWALE_TPACKET_V2 1
#define SWALE_PACKET_OUTGOING 4

/* struct mmsghdr (needs _GNU_SOURCE). */
struct swale_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/* AF_PACKET SOCK_RAW, non-blocking, close-on-exec, protocol 0 (nothing is queued before bind).
 * Returns the fd or -errno. */
int swale_packet_open(void);
/* setsockopt(fd, SOL_PACKET, opt, &value, sizeof(int)); returns 0 or -errno. */
int swale_packet_setopt(int fd, int opt, int value);
/* PACKET_RX_RING with a struct tpacket_req; returns 0 or -errno. */
int swale_packet_rx_ring(int fd, unsigned int block_size, unsigned int block_nr, unsigned int frame_size, unsigned int frame_nr);
/* Binds to ifindex for ETH_P_ALL; returns 0 or -errno. */
int swale_packet_bind(int fd, int ifindex);
/* PACKET_ADD_MEMBERSHIP / PACKET_DROP_MEMBERSHIP of type PACKET_MR_PROMISC; returns 0 or -errno. */
int swale_packet_promisc(int fd, int ifindex, int add);
/* PACKET_STATISTICS (reading resets the kernel's counters); returns 0 or -errno. */
int swale_packet_stats(int fd, unsigned int *packets, unsigned int *drops);
/* recvmsg(2) of one datagram into iov (MSG_DONTWAIT | MSG_TRUNC: returns its full length even if
 * longer than iov); returns bytes or -errno. iov == NULL, n == 0 discards the datagram. */
int swale_recv_iov(int fd, struct iovec *iov, int n);
/* sendmmsg(2), nothing added: messages sent, or -1 with errno set (retried in Swift on EINTR). */
int swale_sendmmsg(int fd, struct swale_mmsghdr *msgs, unsigned int n, int flags);
/* setns(fd, CLONE_NEWNET) for the calling thread; returns 0 or -errno. */
int swale_setns_net(int fd);
/* Clears and returns a socket's pending error (SO_ERROR). */
int swale_socket_error(int fd);

/* Seals a region's memfd against shrinking (a client truncating it would SIGBUS the service) and
 * against further seals; growing stays possible. Returns 0 or -errno. */
int swale_seal_region(int fd);
/* 1 if the memfd cannot shrink, 0 if it can, -errno on error. */
int swale_region_is_sealed(int fd);

/* Doorbells: a nonblocking AF_UNIX datagram socketpair per wake-up direction. Unlike an eventfd,
 * a client holding one end cannot make the service block on the other (MSG_DONTWAIT does not depend
 * on the O_NONBLOCK flag the client could clear on a shared file description). fds[0] rings,
 * fds[1] waits. Returns 0 or -errno. */
int swale_doorbell(int fds[2]);
/* Rings: 0, or 0 as well when the bell is already full (a wake-up is pending anyway). */
int swale_doorbell_ring(int fd);
/* Drains every pending ring; returns how many. */
uint64_t swale_doorbell_drain(int fd);

/* Returns free heap memory to the system (glibc's malloc_trim): after a large reply. */
void swale_trim_heap(void);

#endif
