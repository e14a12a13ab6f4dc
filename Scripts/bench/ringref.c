/*
 * ringref — the reference for the app path: a single-producer single-consumer ring of 2048-byte
 * slots in a memfd shared by two processes (fork), C11 acquire/release on the two indices, each on
 * its own cache line. The producer copies a 60-byte frame into each slot (its first 8 bytes the
 * frame's number), the consumer copies it out and checks the number (a lost, repeated or reordered
 * frame makes ringref fail); both move BATCH frames per index update and spin (with the CPU's
 * pause hint) while the ring is full or empty. Swale's pipe moves buffer indices instead of bytes, so it should never be
 * slower than this (Scripts/bench-app-path.sh prints the ratio of each run).
 *
 * With -r (relay), a third process sits between the two, as a switch does: it copies each frame
 * from the producer's ring into a second ring that the consumer reads, so every frame crosses
 * cores twice, and three busy processes share the machine. With three parties all of them poll
 * with sched_yield instead of pause (a spinning party would hold a shared core for its whole time
 * slice), as Swale's applications and forwarding thread do. -r takes the relay's CPU, or -1 to
 * leave it where the scheduler puts it.
 *
 * With -i (indirect), each ring has netmap's layout: 16-byte slots that name a buffer and carry the
 * frame's length, the buffers apart from them; every party goes from the slot to the buffer, as
 * Swale's do. A slot's line then holds four frames' slots, which cross cores as well.
 *
 *   ringref [-n FRAMES] [-b BATCH] [-s SLOTS] [-l LEN] [-a PRODUCER_CPU,CONSUMER_CPU] [-r RELAY_CPU] [-i]
 *   prints: batch=B frames=N secs=T mpps=M
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOT_BYTES 2048

/* One ring's indices. */
struct indices {
    _Alignas(64) _Atomic uint64_t produced; /* written by the ring's producer only */
    _Alignas(64) _Atomic uint64_t consumed; /* written by the ring's consumer only */
};

struct shared {
    struct indices in, out; /* producer -> (relay ->) consumer; `out` only with a relay */
    _Alignas(64) uint64_t misordered; /* frames the consumer found out of sequence */
};

static int yielding; /* poll with sched_yield (three parties) instead of pause */

/* -i: netmap's slot (buffer index, length, flags, pointer) in front of separate buffers. */
struct islot {
    uint32_t buf_idx;
    uint16_t len, flags;
    uint64_t ptr;
};
static int indirect;
static uint64_t nslots;

/* Bytes of one ring: its slots and buffers (indirect) or its frame slots. */
static size_t ring_bytes(void) {
    return indirect ? nslots * sizeof(struct islot) + nslots * SLOT_BYTES : nslots * SLOT_BYTES;
}

/* Where the frame at position pos of a ring lives: in its slot, or in the buffer its slot names. */
static inline char *frame_at(char *ring, uint64_t pos) {
    uint64_t i = pos % nslots;
    if (!indirect) return ring + i * SLOT_BYTES;
    const struct islot *slot = (const struct islot *)ring + i;
    return ring + nslots * sizeof(struct islot) + (uint64_t)slot->buf_idx * SLOT_BYTES;
}

/* The length the slot at pos carries (indirect), or the fixed one. */
static inline uint64_t len_at(char *ring, uint64_t pos, uint64_t len) {
    return indirect ? ((struct islot *)ring)[pos % nslots].len : len;
}

static inline void set_len(char *ring, uint64_t pos, uint64_t len) {
    if (indirect) ((struct islot *)ring)[pos % nslots].len = (uint16_t)len;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void relax(void) {
    if (yielding) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
}

int main(int argc, char **argv) {
    uint64_t frames = 20000000, batch = 32, slots = 1024, len = 60;
    int cpu_producer = -1, cpu_consumer = -1, cpu_relay = -1, relay = 0, opt;
    while ((opt = getopt(argc, argv, "n:b:s:l:a:r:i")) != -1) {
        switch (opt) {
        case 'n': frames = strtoull(optarg, NULL, 0); break;
        case 'b': batch = strtoull(optarg, NULL, 0); break;
        case 's': slots = strtoull(optarg, NULL, 0); break;
        case 'l': len = strtoull(optarg, NULL, 0); break;
        case 'a':
            if (sscanf(optarg, "%d,%d", &cpu_producer, &cpu_consumer) != 2) {
                fprintf(stderr, "-a takes PRODUCER_CPU,CONSUMER_CPU\n");
                return 2;
            }
            break;
        case 'r': relay = 1; cpu_relay = atoi(optarg); break;
        case 'i': indirect = 1; break;
        default:
            fprintf(stderr, "usage: ringref [-n FRAMES] [-b BATCH] [-s SLOTS] [-l LEN] [-a P,C] [-r RELAY_CPU] [-i]\n");
            return 2;
        }
    }
    if (batch < 1 || batch >= slots || len < 8 || len > SLOT_BYTES) {
        fprintf(stderr, "ringref: need 1 <= batch < slots and 8 <= len <= %d\n", SLOT_BYTES);
        return 2;
    }
    yielding = relay;
    nslots = slots;
    size_t bytes = 4096 + (relay ? 2 : 1) * ring_bytes();
    int fd = memfd_create("ringref", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) { perror("memfd"); return 1; }
    char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (base == MAP_FAILED) { perror("mmap"); return 1; }
    struct shared *sh = (struct shared *)base;
    char *ring = base + 4096, *ring_out = relay ? ring + ring_bytes() : ring;
    for (uint64_t i = 0; indirect && i < slots; i++) { /* each slot owns a buffer, as in netmap */
        ((struct islot *)ring)[i].buf_idx = (uint32_t)i;
        ((struct islot *)ring_out)[i].buf_idx = (uint32_t)i;
    }
    struct indices *to_consumer = relay ? &sh->out : &sh->in;

    pid_t child = fork();
    if (child == 0) { /* the consumer */
        pin(cpu_consumer);
        char frame[SLOT_BYTES];
        uint64_t head = 0, bad = 0;
        while (head < frames) {
            uint64_t avail;
            while ((avail = atomic_load_explicit(&to_consumer->produced, memory_order_acquire) - head) == 0) relax();
            if (avail > batch) avail = batch;
            for (uint64_t k = 0; k < avail; k++) {
                memcpy(frame, frame_at(ring_out, head + k), len_at(ring_out, head + k, len));
                uint64_t seq; /* each frame carries its number: a lost or repeated one shows */
                memcpy(&seq, frame, 8);
                bad += seq != head + k;
            }
            head += avail;
            atomic_store_explicit(&to_consumer->consumed, head, memory_order_release);
        }
        sh->misordered = bad;
        _exit(bad ? 1 : 0);
    }
    if (child < 0) { perror("fork"); return 1; }
    pid_t relay_pid = -1;
    if (relay && (relay_pid = fork()) < 0) { perror("fork"); kill(child, SIGKILL); return 1; }
    if (relay && relay_pid == 0) { /* the relay: reads the addresses, copies the frame over */
        pin(cpu_relay);
        uint64_t head = 0, sum = 0;
        while (head < frames) {
            uint64_t avail, room;
            while ((avail = atomic_load_explicit(&sh->in.produced, memory_order_acquire) - head) == 0) relax();
            while ((room = slots - 1 - (head - atomic_load_explicit(&sh->out.consumed, memory_order_acquire))) == 0)
                relax();
            if (avail > room) avail = room;
            if (avail > batch) avail = batch;
            for (uint64_t k = 0; k < avail; k++) {
                const char *from = frame_at(ring, head + k);
                uint64_t n = len_at(ring, head + k, len);
                uint64_t addresses;
                memcpy(&addresses, from, 8); /* a switch looks at the destination before it copies */
                sum += addresses;
                memcpy(frame_at(ring_out, head + k), from, n);
                set_len(ring_out, head + k, n);
            }
            head += avail;
            atomic_store_explicit(&sh->in.consumed, head, memory_order_release);
            atomic_store_explicit(&sh->out.produced, head, memory_order_release);
        }
        if (sum == 1) fputc(' ', stderr); /* keep the address reads */
        _exit(0);
    }
    pin(cpu_producer);
    char frame[SLOT_BYTES];
    memset(frame, 0x5a, sizeof frame);
    double t0 = seconds();
    uint64_t tail = 0;
    while (tail < frames) {
        uint64_t room;
        while ((room = slots - 1 - (tail - atomic_load_explicit(&sh->in.consumed, memory_order_acquire))) == 0) relax();
        if (room > batch) room = batch;
        if (room > frames - tail) room = frames - tail;
        for (uint64_t k = 0; k < room; k++) {
            uint64_t seq = tail + k;
            memcpy(frame, &seq, 8);
            memcpy(frame_at(ring, tail + k), frame, len);
            set_len(ring, tail + k, len);
        }
        tail += room;
        atomic_store_explicit(&sh->in.produced, tail, memory_order_release);
    }
    int status = 0, relay_status = 0;
    waitpid(child, &status, 0);
    if (relay_pid > 0) waitpid(relay_pid, &relay_status, 0);
    double dt = seconds() - t0;
    printf("batch=%llu frames=%llu secs=%.3f mpps=%.2f\n", (unsigned long long)batch, (unsigned long long)frames, dt,
           (double)frames / dt / 1e6);
    if (sh->misordered) fprintf(stderr, "ringref: %llu frames out of sequence\n", (unsigned long long)sh->misordered);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && WIFEXITED(relay_status) && WEXITSTATUS(relay_status) == 0 ? 0 : 1;
}
