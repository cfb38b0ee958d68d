#!/usr/bin/env bash
# Installs `prometheus` and `promtool` from Debian's `prometheus` package, for the monitoring tests
# (tests/monitoring/: promtool checks and unit-tests the alert rules; an integration test runs a real
# Prometheus server against a worker). Idempotent: does nothing when both are already on PATH.
#
# The package's maintainer scripts would start a Prometheus daemon (init script or systemd unit).
# A test machine must not keep one running, so services are kept from starting with a
# policy-rc.d for the duration of the install (the one already there is left alone), systemd
# units are not started either (no systemd runs as PID 1 here, and `systemctl` is told not to),
# and any prometheus daemon left running afterwards is stopped by its pid.
# Recommends (prometheus-node-exporter, another daemon) are not installed.
set -euo pipefail

say() { printf 'install-prometheus: %s\n' "$*"; }

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    say "already installed: $(prometheus --version 2>&1 | head -n1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        say "need root (or sudo) to apt-get install prometheus" >&2
        exit 1
    fi
fi

POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$POLICY" ]; then
    say "adding a temporary $POLICY (exit 101) so the package starts no service"
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" = 1 ]; then
        $SUDO rm -f "$POLICY"
        say "removed the temporary $POLICY"
    fi
}
trap cleanup EXIT

# Daemons already running before the install are not ours to stop.
before="$(pgrep -x prometheus || true)"

started=$(date +%s)
say "apt-get update"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
say "apt-get install prometheus (Debian's package, no recommends)"
$SUDO env DEBIAN_FRONTEND=noninteractive SYSTEMCTL_SKIP_REDIRECT=1 \
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
say "installed in $(( $(date +%s) - started )) s: $(prometheus --version 2>&1 | head -n1)"

# Stop any daemon the install started anyway (by pid, never by name).
for pid in $(pgrep -x prometheus || true); do
    case " $before " in *" $pid "*) continue ;; esac
    say "stopping the prometheus daemon the package started (pid $pid)"
    $SUDO kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    $SUDO kill -9 "$pid" 2>/dev/null || true
done

command -v promtool >/dev/null 2>&1 || { say "promtool missing after install" >&2; exit 1; }
say "promtool: $(promtool --version 2>&1 | head -n1)"
