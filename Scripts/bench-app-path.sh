#!/bin/bash
# The app path against a plain C shared-memory ring (Scripts/bench/ringref.c, run through
# bench-ringref.sh, as bench-slow-modes.sh runs it), interleaved: ring, Swale, ring, Swale, ... on
# the same machine state; the per-run ratio is what compares (this VM's speed changes between
# runs). Paths: a pipe (swale-pktgen tx on X<1, rx on X>1) at batch 1, 32 and 256, and app ->
# switch -> app at batch 32 (unicast to the receiver, which announces its MAC), once as VALE does
# it (a full receiver ring drops) and once with flow control (a second swaled with
# --flow-control 2000: frames wait for room); pinned (-a: sender CPU 0,
# receiver CPU 1, as the ring's processes) and unpinned. For each Swale run also the receiver's
# sleeps and involuntary context switches per 1000 frames: the marks of a slow mode. The switch
# cases also run the C relay (ringref -r -i: producer -> copier -> consumer, three processes polling
# with sched_yield, the copier where the scheduler puts it, as swaled's thread, and netmap's layout
# of slots and buffers, as Swale's) after each Swale run and print the ratio to it: what a minimal
# copying middle party with Swale's layout does on the same machine state.
# The relay's own ratio to the ring is summarised too: what a minimal copying middle party reaches.
# Not a test: prints numbers. Usage: Scripts/bench-app-path.sh [RUNS] [FRAMES]
# SWALED_ARGS go to both swaleds (say "--forwarding-cpus 1": the thread on the receiver's CPU;
# RELAY_CPU=1 then places the C relay's copier alike).
# MODES="pinned unpinned" and CASES="pipe:1 pipe:32 pipe:256 switch:32 switch-fc:32" pick a subset.
RUNS=${1:-10}
N=${2:-10000000}
source "$(dirname "$0")/bench-common.sh"
source "$(dirname "$0")/bench-ringref.sh"
FC_SOCK=$DIR/swaled-fc.sock
$B/swaled --socket "$FC_SOCK" --log-level warning --flow-control 2000 ${SWALED_ARGS:-} & PIDS="$PIDS $!"
for _ in $(seq 50); do [ -S "$FC_SOCK" ] && break; sleep 0.1; done

# Each C run starts after the same 0.3 s without load as each Swale run (its receiver waits that
# long for the sender): on this VM a CPU that idles comes back in the slow mode more often
# (Scripts/bench-slow-modes.sh), and the comparison should not favour either side.
idle_ring() { sleep 0.3; ring "$@"; }

# The ring runs just before and just after each Swale run; the ratio is against their mean. This
# VM changes speed between runs (the ring alone goes from ~13 to ~90 Mpps), so where the two ring
# runs differ by more than 1.5x the machine changed under the measurement: such runs are marked
# '~' and also left out of a second summary.
printf "%-9s %-9s %-6s %-4s %8s %8s %8s %7s %10s %10s %8s %8s\n" path mode batch run ring-bef swale ring-aft ratio "sleeps/1k" "invol/1k" relay "vs relay"
for mode in ${MODES:-pinned unpinned}; do
    for case in ${CASES:-pipe:1 pipe:32 pipe:256 switch:32 switch-fc:32}; do
        set -- ${case/:/ }
        path=$1 batch=$2 frames=$N sock=$SOCK
        [ "$batch" = 1 ] && frames=$((N / 10))
        if [ "$path" = pipe ]; then tx="vale0:bench<1"; rx="vale0:bench>1"; else tx="vale0:sa"; rx="vale0:sb"; fi
        [ "$path" = switch-fc ] && sock=$FC_SOCK
        ratios="" steady="" vsrelay="" relayring=""
        after=$(idle_ring "$batch" "$mode" "$frames")
        for r in $(seq "$RUNS"); do
            before=$after
            read -r mpps sleeps invol < <(swale "$tx" "$rx" "$batch" "$mode" "$frames" "$sock")
            after=$(idle_ring "$batch" "$mode" "$frames")
            relay=- vs=-
            if [ "$path" != pipe ]; then
                relay=$(idle_ring "$batch" "$mode" "$frames" relay)
                vs=$(python3 -c "print(f'{$mpps / $relay:.2f}')")
                vsrelay="$vsrelay $vs"
                relayring="$relayring $(python3 -c "print(f'{$relay / (($before + $after) / 2):.2f}')")"
            fi
            read -r ratio changed < <(python3 -c "
b, a = $before, $after
print(f'{$mpps / ((b + a) / 2):.2f}', '~' if max(a, b) > 1.5 * min(a, b) else '')")
            ratios="$ratios $ratio"
            [ -z "$changed" ] && steady="$steady $ratio"
            printf "%-9s %-9s %-6s %-4s %8.2f %8.2f %8.2f %6sx%1s %9s %10s %8s %8s\n" "$path" "$mode" "$batch" "$r" "$before" "$mpps" "$after" "$ratio" "$changed" "$sleeps" "$invol" "$relay" "$vs"
        done
        n_steady=$(echo $steady | wc -w)
        printf "%-9s %-9s %-6s ratio min/median/max %s; the %s runs without '~': %s\n" "$path" "$mode" "$batch" \
            "$(echo $ratios | tr ' ' '\n' | summary)" "$n_steady" "$( [ "$n_steady" -gt 0 ] && echo $steady | tr ' ' '\n' | summary || echo -)"
        if [ -n "$vsrelay" ]; then
            printf "%-9s %-9s %-6s against the C relay: min/median/max %s\n" "$path" "$mode" "$batch" "$(echo $vsrelay | tr ' ' '\n' | summary)"
            printf "%-9s %-9s %-6s the C relay itself against the ring: min/median/max %s\n" "$path" "$mode" "$batch" "$(echo $relayring | tr ' ' '\n' | summary)"
        fi
    done
done
