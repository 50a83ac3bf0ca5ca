#!/usr/bin/env bash
# Instructions per callback, by thread and by function, for one payhook binary: the daemon
# runs under valgrind's callgrind while `wrk` sends it the ingest bench's ordered callbacks
# (benches/ingest.lua). Instruction counts do not drift with the machine's load the way the
# bench's seconds do, so two binaries compare on levers smaller than the bench's noise.
#
#   cargo build --release && benches/callgrind.sh target/release/payhook OUT_DIR [SECONDS]
#
# OUT_DIR must not exist yet, or be empty; it keeps the callgrind files, the store and the
# logs. Needs Debian's valgrind, wrk, sqlite3 and curl. Two threads are reported: the
# writer, and the request threads summed; the checkpointer, the syncer and the readers are
# left out (their files are in OUT_DIR). Under valgrind, SHA-256 takes its portable path
# (valgrind lacks the CPU's SHA instructions), so hashing counts for far more here than on
# the real machine: a change to hashing shows larger here than it is.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 PAYHOOK_BINARY OUT_DIR [SECONDS]" >&2
    exit 2
fi
bin=$(realpath "$1")
out=$(realpath -m "$2")
seconds=${3:-20}
here=$(cd "$(dirname "$0")" && pwd)
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "$out exists and is not empty; give a new directory" >&2
    exit 2
fi
mkdir -p "$out"
port=$((20000 + RANDOM % 20000))
cat > "$out/payhook.toml" <<EOF
listen = "127.0.0.1:$port"
public_base_url = "https://hooks.example.com"
[providers.zengapay]
secret_hash = "bench-zengapay-secret"
[store]
path = "$out/payhook.db"
EOF
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/cg.%p" \
    "$bin" serve -c "$out/payhook.toml" > "$out/serve.log" 2>&1 &
daemon=$!
# Whatever ends the script (an error, Ctrl-C), the daemon does not outlive it.
trap 'kill "$daemon" 2>/dev/null || true' EXIT
up=
for _ in $(seq 1 240); do
    if ! kill -0 "$daemon" 2>/dev/null; then
        echo "the daemon exited during start-up; $out/serve.log says:" >&2
        cat "$out/serve.log" >&2
        exit 1
    fi
    if curl -fs --max-time 5 -o /dev/null "http://127.0.0.1:$port/healthz"; then
        up=1
        break
    fi
    sleep 0.5
done
if [ -z "$up" ]; then
    echo "no answer on 127.0.0.1:$port/healthz after 120 s; see $out/serve.log" >&2
    exit 1
fi
# One wrk thread, few connections: valgrind runs the daemon's threads one at a time.
wrk -t1 -c8 -d"${seconds}s" -s "$here/ingest.lua" "http://127.0.0.1:$port" \
    -- ordered bench-zengapay-secret > "$out/wrk.txt"
if ! kill -TERM "$daemon" 2>/dev/null; then
    echo "the daemon exited during the load; see $out/serve.log" >&2
    exit 1
fi
if ! wait "$daemon"; then
    echo "warning: the daemon exited with an error at shutdown; its callgrind files may be incomplete" >&2
fi
trap - EXIT
n=$(sqlite3 "$out/payhook.db" "SELECT count(*) FROM callbacks")
if [ "$n" -eq 0 ]; then
    echo "no callback was stored; see $out/wrk.txt and $out/serve.log" >&2
    exit 1
fi
echo "$n callbacks stored"
# callgrind_annotate merges the code inlined into a function with the function's own entry
# (the one naming its object file) only when it prints the sources' paths whole, which it
# does not from a directory above them: so it runs from OUT_DIR, new or empty, never above
# the sources.
# Each thread's file is told by the functions it ran: the writer, or a request thread
# (tokio's workers, and the blocking-pool threads that stand in for them). The request
# threads are summed.
for f in "$out"/cg.*-*; do
    annotated=$(cd "$out" && callgrind_annotate --inclusive=yes --threshold=99.9 "$f")
    role=
    if grep -q 'store::writer::writer_loop \[' <<<"$annotated"; then
        role=writer
    elif grep -q 'hyper::proto::h1::dispatch.* \[' <<<"$annotated"; then
        role=request
    fi
    if [ -n "$role" ]; then
        sed "s/^/$role /" <<<"$annotated"
    fi
done | awk -v n="$n" '
    # "ROLE  1,234 (5.6%)  file:function [object]": a function'"'"'s inclusive count.
    $3 == "(100.0%)" && /PROGRAM TOTALS/ { v = $2; gsub(",", "", v); total[$1] += v; next }
    /payhook::/ && / \[/ {
        v = $2; gsub(",", "", v); name = $0; sub(/^[^:]*:/, "", name); sub(/ \[.*/, "", name)
        ir[$1 SUBSEP name] += v
    }
    END {
        for (role in total) {
            printf "== %s thread%s: %d instructions per callback\n", role,
                role == "request" ? "s" : "", total[role] / n
            for (k in ir) {
                split(k, part, SUBSEP)
                if (part[1] == role) printf "%9d  %s\n", ir[k] / n, part[2] | "sort -rn | head -n 20"
            }
            close("sort -rn | head -n 20")
        }
    }'
