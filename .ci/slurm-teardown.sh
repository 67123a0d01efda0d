#!/usr/bin/env bash
# Stop what .ci/slurm-setup.sh started: by pid file only (never by process name), TERM first, KILL
# after 5 s. Leaves packages, config and logs in place; safe to run when nothing is running.
set -uo pipefail

for f in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do
      [ -e "/proc/$pid" ] || break
      grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break   # zombie: gone, PID 1 reaps late
      sleep 0.1
    done
    if [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
done
