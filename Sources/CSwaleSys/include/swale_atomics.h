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
