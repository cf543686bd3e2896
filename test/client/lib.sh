# lib.sh - shell helpers for the client test scripts (sourced, not run:
# it is not executable, so scripts/run-tests.sh does not take it for a test).
#
#   start_server [ARGS...]   starts $P2P_SERVER on 127.0.0.1 and a free port
#                            (sets server_pid, port, server_log)
#   stop_server              SIGTERM, bounded wait, SIGKILL if need be
#   wait_for FILE PATTERN [SECONDS]   until grep finds PATTERN in FILE
#   wait_exit PID [SECONDS]  waits for a background job; sets exit_code
#   fail MESSAGE             prints the message and the logs, exits 1
#
# Every wait is bounded. The caller sets tmp (a scratch directory) and
# installs `trap cleanup EXIT INT TERM`.

server_pid=""
port=""

cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    for p in ${extra_pids:-}; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    [ -n "${tmp:-}" ] && rm -rf "$tmp"
}

fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.log "$tmp"/*.out "$tmp"/*.err; do
        [ -f "$f" ] || continue
        echo "--- $f"
        tail -n 20 "$f"
    done
    exit 1
}

# A number in [20000, 60000), from /dev/urandom.
random_port() {
    n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    echo $((20000 + n % 40000))
}

# wait_for FILE PATTERN [SECONDS]: polls every 20 ms, bounded.
wait_for() {
    _limit=$(( ${3:-10} * 50 ))
    _i=0
    while [ $_i -lt $_limit ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.02
        _i=$((_i + 1))
    done
    return 1
}

# wait_exit PID [SECONDS]: exit_code is the job's status, or 124 when it
# had to be killed.
wait_exit() {
    _limit=$(( ${2:-10} * 50 ))
    _i=0
    while kill -0 "$1" 2>/dev/null && [ $_i -lt $_limit ]; do
        sleep 0.02
        _i=$((_i + 1))
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -9 "$1" 2>/dev/null
        wait "$1" 2>/dev/null
        exit_code=124
        return 1
    fi
    wait "$1"
    exit_code=$?
    return 0
}

start_server() {
    server_log="$tmp/server.log"
    for _try in 1 2 3 4 5 6 7 8 9 10; do
        port=$(random_port)
        : >"$server_log"
        "$P2P_SERVER" --bind 127.0.0.1 "$@" "$port" 2>"$server_log" &
        server_pid=$!
        _i=0
        while [ $_i -lt 250 ]; do
            grep -q "listening on" "$server_log" && return 0
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.02
            _i=$((_i + 1))
        done
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        server_pid=""
    done
    fail "could not start $P2P_SERVER on a free port"
}

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill "$server_pid" 2>/dev/null
    wait_exit "$server_pid" 10
    server_pid=""
}
