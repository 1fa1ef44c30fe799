#!/usr/bin/env bash
# Syscalls per TLS record in the one-way transfer, for every tlsflow-bench contender.
#
# For each contender and write size, runs the one-way measure under `strace -f -c` (one
# benchmark run per trace, SYSCALLS_RUNS traces) and divides the calls that move data,
# wait for sockets or take locks by the number of 16 KiB records moved (the TLS contenders
# send full 16 KiB records; for plain TCP the figure is per 16 KiB moved). Each figure is
# the median of the traces. Writes docs/bench/syscalls.md.
#
# Usage, from anywhere in the workspace:
#   docs/bench/syscalls.sh
#
# Environment:
#   SYSCALLS_SIZE=256MiB       bytes per transfer (a multiple of 16 KiB)
#   SYSCALLS_RUNS=3            traces per contender and write size
#   SYSCALLS_WAIT_FOR=FILE     before the build and before every traced run, wait while
#                              FILE exists (for sharing a machine with timing benchmarks)
#
# strace slows everything down: only the counts mean anything, not the times.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

readonly SIZE="${SYSCALLS_SIZE:-256MiB}"
readonly WAIT_FOR="${SYSCALLS_WAIT_FOR:-}"
readonly RUNS="${SYSCALLS_RUNS:-3}"
readonly WRITE_SIZES=(16KiB 256KiB)
readonly CONTENDERS=(
    tcp-blocking tcp-nonblocking tcp-tokio
    tlsflow-blocking-rustls tlsflow-nonblocking-rustls tlsflow-tokio-rustls
    tlsflow-blocking-openssl tlsflow-nonblocking-openssl tlsflow-tokio-openssl
    rustls-stream tokio-rustls tokio-openssl
)
readonly BIN=target/release/tlsflow-bench
readonly OUT=docs/bench/syscalls.md
readonly RECORD=16384

# The calls counted, by kind. Each kind is the sum of its calls.
readonly SENDS=(sendto sendmsg writev write)
readonly RECEIVES=(recvfrom recvmsg readv read)
readonly WAITS=(epoll_wait epoll_pwait poll ppoll)
readonly LOCKS=(futex)

die() {
    echo "syscalls.sh: $*" >&2
    exit 1
}

wait_turn() {
    if [[ -n "$WAIT_FOR" ]]; then
        while [[ -e "$WAIT_FOR" ]]; do
            sleep 10
        done
    fi
}

command -v strace >/dev/null 2>&1 ||
    die "strace not found: install it (e.g. apt-get install strace) and run again"

# SIZE in bytes, with the units tlsflow-bench accepts for --size (binary ones only here).
bytes_of() {
    local text="$1" number unit
    [[ "$text" =~ ^([0-9]+)([KMG]iB|B)?$ ]] || die "size $text: use a whole number of B, KiB, MiB or GiB"
    number="${BASH_REMATCH[1]}"
    unit="${BASH_REMATCH[2]:-B}"
    case "$unit" in
        B) echo "$number" ;;
        KiB) echo $((number << 10)) ;;
        MiB) echo $((number << 20)) ;;
        GiB) echo $((number << 30)) ;;
    esac
}

size_bytes="$(bytes_of "$SIZE")"
((size_bytes % RECORD == 0 && size_bytes > 0)) || die "SYSCALLS_SIZE must be a multiple of 16 KiB"
records=$((size_bytes / RECORD))
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "SYSCALLS_RUNS must be a whole number, at least 1"

model_of() {
    case "$1" in
        *nonblocking*) echo "non-blocking" ;;
        *blocking* | rustls-stream) echo "blocking" ;;
        *tokio*) echo "tokio" ;;
        *) echo "?" ;;
    esac
}

wait_turn
cargo build --release -p tlsflow-bench
[[ -x "$BIN" ]] || die "$BIN was not built"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Runs one contender under strace; the summary goes to $work/NAME-WRITE-SIZE-RUN.txt.
trace() {
    local name="$1" write="$2" size="$3" run="$4" file="$work/$1-$2-$3-$4.txt"
    wait_turn
    echo "strace: $name, $write writes, $size, trace $run" >&2
    if ! strace -f -c -o "$file" "$BIN" --no-write --measure oneway --exact "$name" \
        --no-baselines --write-size "$write" --size "$size" --runs 1 >"$work/stdout" 2>"$work/stderr"; then
        cat "$work/stderr" >&2
        die "$name with $write writes failed under strace"
    fi
    [[ -s "$file" ]] || die "strace wrote no summary for $name"
}

# Calls of the given syscalls in one strace summary, summed. The summary's columns are
# "% time, seconds, usecs/call, calls, [errors], syscall": calls is the fourth field.
calls() {
    local file="$1"
    shift
    awk -v names=" $* " '
        $NF != "total" && $NF != "syscall" && $1 !~ /^-/ && index(names, " " $NF " ") { sum += $4 }
        END { print sum + 0 }
    ' "$file"
}

# Failed calls (the errors column, EAGAIN for non-blocking receives) of the given syscalls.
failed() {
    local file="$1"
    shift
    awk -v names=" $* " '
        NF == 6 && index(names, " " $NF " ") { sum += $5 }
        END { print sum + 0 }
    ' "$file"
}

# The counts (MODE calls or failed) of the given syscalls in every trace of NAME with
# WRITE-byte writes, one line per trace.
each_trace() {
    local name="$1" write="$2" mode="$3" run
    shift 3
    for ((run = 1; run <= RUNS; run++)); do
        "$mode" "$work/$name-$write-$SIZE-$run.txt" "$@"
    done
}

# The median of the numbers on stdin, one a line.
median() {
    sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# "min–max" of the numbers on stdin, per record.
spread() {
    sort -n | awk -v d="$records" 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f–%.3f", lo / d, hi / d }'
}

per_record() {
    awk -v n="$1" -v d="$records" 'BEGIN { printf "%.3f", n / d }'
}

# The median of NAME's traces with WRITE-byte writes, per record.
cell() {
    per_record "$(each_trace "$@" | median)"
}

# The traces interleave: every contender once per round, so that whatever else the machine
# does spreads over all of them.
for ((run = 1; run <= RUNS; run++)); do
    for write in "${WRITE_SIZES[@]}"; do
        for name in "${CONTENDERS[@]}"; do
            trace "$name" "$write" "$SIZE" "$run"
        done
    done
done
# Setup, handshake and close with a single record, to show what the figures above include.
for name in "${CONTENDERS[@]}"; do
    trace "$name" 16KiB 16KiB 1
done

all_kinds=("${SENDS[@]}" "${RECEIVES[@]}" "${WAITS[@]}" "${LOCKS[@]}")
list() {
    local IFS=,
    local words="$*"
    echo "${words//,/, }"
}

setup_max=0
for name in "${CONTENDERS[@]}"; do
    n="$(calls "$work/$name-16KiB-16KiB-1.txt" "${all_kinds[@]}")"
    if ((n > setup_max)); then
        setup_max="$n"
    fi
done

{
    echo "# tlsflow benchmark: syscalls per TLS record, one-way transfer"
    echo
    echo "- Command: \`docs/bench/syscalls.sh\` (from the workspace root)"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Kernel: $(uname -r)"
    echo "- strace: $(strace -V | head -n 1)"
    echo "- Each figure: the median of $RUNS traces of \`strace -f -c -o FILE $BIN --no-write" \
        "--measure oneway --exact NAME --no-baselines --write-size WRITE --size $SIZE --runs 1\`" \
        "(contenders interleaved, one trace each per round), calls counted over the whole process" \
        "(writer and reader threads both), divided by the $records 16 KiB records that $SIZE" \
        "makes. The TLS contenders send full 16 KiB records; for plain TCP a \"record\" is" \
        "just 16 KiB moved."
    echo "- **Setup calls are included, nothing is subtracted**: the program's start (reading" \
        "/proc, running \`rustc -V\` and \`getconf\` to describe the machine, progress lines on" \
        "stderr), the TCP connection, the TLS handshake and the clean close all count. The last" \
        "table shows what they come to with a single record: at most $setup_max calls of" \
        "the kinds counted, $(per_record "$setup_max") per record when spread over $records."
    echo "- sends: $(list "${SENDS[@]}"); receives: $(list "${RECEIVES[@]}") (reads and writes on" \
        "any descriptor count: \`strace -c\` does not tell sockets from files, pipes or tokio's" \
        "eventfd); waits: $(list "${WAITS[@]}"); locks: futex. Total: all of these." \
        "Failed receives: calls among the receives that returned an error (EAGAIN when a" \
        "non-blocking socket has nothing to read), already counted in receives."
    echo "- strace slows every contender down many times over: only the counts mean anything." \
        "Sends, and the receives of a reader that asks for whole records, follow from the code;" \
        "the receives of a reader that takes whatever has arrived (a partial record means one" \
        "more read), failed receives and waits depend on how far the reader runs behind the" \
        "writer, which strace itself changes: they vary between traces (see the total's min–max)."
    for write in "${WRITE_SIZES[@]}"; do
        echo
        echo "## $write writes, $SIZE: calls per 16 KiB record (median of $RUNS traces)"
        echo
        echo "| contender | model | sends | receives | failed receives | epoll_wait + poll | futex | total | total min–max |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        for name in "${CONTENDERS[@]}"; do
            echo "| $name | $(model_of "$name")" \
                "| $(cell "$name" "$write" calls "${SENDS[@]}")" \
                "| $(cell "$name" "$write" calls "${RECEIVES[@]}")" \
                "| $(cell "$name" "$write" failed "${RECEIVES[@]}")" \
                "| $(cell "$name" "$write" calls "${WAITS[@]}")" \
                "| $(cell "$name" "$write" calls "${LOCKS[@]}")" \
                "| $(cell "$name" "$write" calls "${all_kinds[@]}")" \
                "| $(each_trace "$name" "$write" calls "${all_kinds[@]}" | spread) |"
        done
    done
    echo
    echo "## Raw counts: calls per trace"
    echo
    echo "Every syscall counted above, as \`strace -c\` reported it (calls, failed ones included):" \
        "the median of the $RUNS traces, syscall by syscall."
    echo
    header="| contender | write | $(printf '%s | ' "${all_kinds[@]}")"
    echo "${header% }"
    echo "|---|---|$(printf -- '---:|%.0s' "${all_kinds[@]}")"
    for write in "${WRITE_SIZES[@]}"; do
        for name in "${CONTENDERS[@]}"; do
            row="| $name | $write | "
            for call in "${all_kinds[@]}"; do
                row+="$(each_trace "$name" "$write" calls "$call" | median) | "
            done
            echo "${row% }"
        done
    done
    echo
    echo "## Setup, handshake and close: the same command with a single 16 KiB record"
    echo
    echo "\`--write-size 16KiB --size 16KiB\`: calls per run, not per record. These are included" \
        "in the figures above."
    echo
    echo "| contender | sends | receives | epoll_wait + poll | futex | total |"
    echo "|---|---:|---:|---:|---:|---:|"
    for name in "${CONTENDERS[@]}"; do
        file="$work/$name-16KiB-16KiB-1.txt"
        echo "| $name | $(calls "$file" "${SENDS[@]}") | $(calls "$file" "${RECEIVES[@]}")" \
            "| $(calls "$file" "${WAITS[@]}") | $(calls "$file" "${LOCKS[@]}")" \
            "| $(calls "$file" "${all_kinds[@]}") |"
    done
} >"$work/syscalls.md"

mv "$work/syscalls.md" "$OUT"
echo "wrote $OUT" >&2
