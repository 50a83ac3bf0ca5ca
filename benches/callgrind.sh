#!/usr/bin/env bash
# Instructions per callback, by thread and by function, for one payhook binary: the daemon
# runs under valgrind's callgrind while `wrk` sends it the ingest bench's ordered callbacks
# (benches/ingest.lua). Instruction counts do not drift with the machine's load the way the
# bench's seconds do, so two binaries compare on levers smaller than the bench's noise.
#
#   cargo build --release && benches/callgrind.sh target/release/payhook OUT_DIR [SECONDS]
#
# Needs Debian's valgrind, wrk and sqlite3. Under valgrind the SHA-256 code takes its
# portable path (valgrind lacks the CPU's SHA instructions), so hashing counts for far more
# here than on the real machine; compare functions, not the threads' totals, across hashes.
set -euo pipefail
bin=$(realpath "$1")
out=$(realpath -m "$2")
seconds=${3:-20}
here=$(cd "$(dirname "$0")" && pwd)
port=$((20000 + RANDOM % 20000))
rm -rf "$out" && mkdir -p "$out"
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
for _ in $(seq 1 240); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break
    sleep 0.5
done
# One wrk thread, few connections: valgrind runs the daemon's threads one at a time.
wrk -t1 -c8 -d"${seconds}s" -s "$here/ingest.lua" "http://127.0.0.1:$port" \
    -- ordered bench-zengapay-secret > "$out/wrk.txt"
kill -TERM "$daemon"
wait "$daemon" || true
n=$(sqlite3 "$out/payhook.db" "SELECT count(*) FROM callbacks")
echo "$n callbacks stored"
# Each thread's file is told by the functions it ran: the writer, or a request thread
# (tokio's workers, and the blocking-pool threads that stand in for them). The request
# threads are summed.
for f in "$out"/cg.*-*; do
    # A function's own entry is the one that names its object file. It counts the code
    # inlined into it only when the annotated sources are read (the default --auto=yes)
    # and the sources' paths stay absolute, so not from inside the repository.
    annotated=$(cd "$out" && callgrind_annotate --inclusive=yes --threshold=99.9 "$f")
    role=
    if grep -q 'store::writer::writer_loop \[' <<<"$annotated"; then
        role=writer
    elif grep -q 'hyper::proto::h1::dispatch.* \[' <<<"$annotated"; then
        role=request
    fi
    [ -n "$role" ] && sed "s/^/$role /" <<<"$annotated"
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
