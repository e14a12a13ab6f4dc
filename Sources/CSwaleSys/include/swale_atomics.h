/*
 * swale_atomics.h — how shared memory is touched when the other side may change it concurrently:
 * acquire loads and release stores of ring indices (the application publishes head/cur, the other
 * side tail), relaxed accesses of the wake-up flags and counters, a full fence for the
 * need-wakeup handshake (store my flag, fence, load theirs), and a spin hint for busy polling.
 * Swift has no portable atomics on raw shared memory that compile to single instructions, so
 * these are inline C: each is one instruction (or a plain load/store on x86).
 */
#ifndef SWALE_ATOMICS_H
#define SWALE_ATOMICS_H

#include <stdint.h>

static inline uint32_t swale_load_acquire(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void swale_store_release(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t swale_load_relaxed(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void swale_store_relaxed(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void swale_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/*
 * The need-wakeup handshake as an asymmetric barrier (Dekker's pattern with membarrier(2), as
 * userspace RCU and folly do it). The sleeper stores its flag and loads the other side's index; the
 * publisher stores its index and loads the flag; each needs store->load order. A full fence on the
 * publisher's side is paid on every sync, and on x86 it is a locked instruction that waits for every
 * store before it, the cache misses of the batch just written included. So the sleeper, about to
 * sleep anyway, pays for both (swale_barrier_heavy: a fence, then MEMBARRIER_CMD_GLOBAL_EXPEDITED,
 * which makes every running thread of every registered process execute a full barrier before it
 * returns), and the publisher needs only a compiler barrier (swale_barrier_toward): either its flag
 * load comes after that barrier and sees the flag, or its index store came before it and the
 * sleeper's load sees the index.
 * Both sides must agree, per control block: the publisher skips the fence only if its own process is
 * registered (swale_barrier_register) and the sleeper it publishes to said, in its csb flag
 * (app_membarrier / switch_membarrier), that it sleeps this way (swale_barrier_sleeper). A peer that
 * does not say so (an older library, a program of its own, membarrier refused by seccomp) gets the
 * fence. A peer that says so falsely can only lose its own wake-ups.
 */
/* The csb flag's values: 0 not said (fence), 1 the holder sleeps the membarrier way, 2 several
 * holders share the control block (a shared open or an adopted descriptor; fence: the service
 * cannot know how each of them sleeps). The service writes 0 for a new holder and 2 when a second
 * one joins; a holder's library turns 0 into 1 and never overwrites a 2. */
#define SWALE_SLEEPS_MEMBARRIER 1
#define SWALE_SLEEPERS_SEVERAL 2
/* Set by swale_barrier_register: 1 if this process is registered for GLOBAL_EXPEDITED. */
extern int swale_fenceless;
/* Registers the process (once; again after fork); returns swale_fenceless. */
int swale_barrier_register(void);
/* 1 if this process's sleeps end with a working membarrier (what a csb flag may then say). */
int swale_barrier_sleeper(void);
/* What the kernel says of this process: 1 registered, 0 not, -errno (before Linux 6.3, which
 * cannot tell). For tests. */
int swale_barrier_registered(void);
/* The publisher's side, toward a sleeper whose csb flag is at *peer_flag. */
static inline void swale_barrier_toward(const uint16_t *peer_flag) {
    if (__builtin_expect(swale_fenceless && __atomic_load_n(peer_flag, __ATOMIC_RELAXED) == SWALE_SLEEPS_MEMBARRIER, 1))
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    else
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
/* The sleeper's side: a fence, then membarrier where this process found it working. */
void swale_barrier_heavy(void);
/* A count rather than a flag where several waiters may share one word (holders of one port). */
static inline void swale_add_relaxed(uint32_t *p, uint32_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
/* Takes v off a count, stopping at 0 (a lowering without its raise must not wrap it around). */
static inline void swale_sub_relaxed(uint32_t *p, uint32_t v) {
    uint32_t c = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (c != 0 && !__atomic_compare_exchange_n(p, &c, c > v ? c - v : 0, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}
static inline uint64_t swale_load_relaxed_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void swale_store_relaxed_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void swale_store_relaxed_u16(uint16_t *p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
/* *p = to if it is from; whether it was. */
static inline int swale_cas_relaxed_u16(uint16_t *p, uint16_t from, uint16_t to) {
    return __atomic_compare_exchange_n(p, &from, to, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* A spin-wait hint: tells the core we are polling (saves power, yields to the sibling hyperthread). */
static inline void swale_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Asks for the cache line at p ahead of use (a frame's header the switch will read): the miss of a
 * line another core just wrote then overlaps with other work. Never faults. */
static inline void swale_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
