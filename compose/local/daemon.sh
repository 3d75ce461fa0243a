#!/usr/bin/env bash
# Sourced by the local service scripts that run one background process with a pid file in
# $RUN_DIR and a `ready` probe: wait_started NAME TIMEOUT LOG waits for readiness (failing
# when the process exits or the timeout passes), stop_daemon NAME stops the process (TERM,
# then KILL after 30 s) and removes $RUN_DIR. Callers define log() and die().

daemon_pid() { [[ -f $RUN_DIR/pid ]] && cat "$RUN_DIR/pid" || true; }
daemon_alive() { local p; p=$(daemon_pid); [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }

wait_started() {
  local name=$1 timeout=$2 logfile=$3
  local deadline=$((SECONDS + timeout))
  until ready; do
    daemon_alive || die "$name exited during start-up; see $logfile"
    ((SECONDS < deadline)) || die "$name was not ready within ${timeout}s; see $logfile"
    sleep 0.2 # poll interval of the readiness wait
  done
}

stop_daemon() {
  local p
  p=$(daemon_pid)
  if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
    kill "$p"
    local deadline=$((SECONDS + 30))
    while kill -0 "$p" 2>/dev/null; do
      ((SECONDS < deadline)) || { kill -9 "$p" 2>/dev/null || true; break; }
      sleep 0.2 # poll interval of the stop wait
    done
    log "stopped $1"
  fi
  rm -rf "$RUN_DIR"
}
