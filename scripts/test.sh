#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with Go: installs what the
# tests need (git, the monitoring plugins, chromium, Varnish, PostgreSQL) with
# apt-get when missing, starts a throwaway PostgreSQL on loopback, and runs
# every Go test against SQLite and PostgreSQL. .ci/run calls this same script.
#
#   scripts/test.sh              everything
#   scripts/test.sh ./store/...  just some packages (go test arguments)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
[ -x /usr/lib/nagios/plugins/check_load ] || need_apt+=(monitoring-plugins-basic)
# The web UI's browser tests drive Debian's chromium headless.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The cache-flush tests run their own varnishd (in /usr/sbin, often not on PATH).
command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || need_apt+=(varnish)
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "test.sh: installing ${need_apt[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# The varnish package starts its service on port 6081 when it can; the
	# tests want none of it. Unless the machine has a policy already
	# (containers do), one for this install refuses that start and leaves
	# every other package's as it would be without a policy: run when there
	# is an init system.
	own_policy=false
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		own_policy=true
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
		printf '%s\n' '#!/bin/sh' \
			'for a; do case $a in varnish | varnish.service | varnishncsa | varnishncsa.service) exit 101 ;; esac; done' \
			'[ -e /sbin/init ] && exit 0' 'exit 101' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
	fi
	apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
	if $own_policy; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
fi

# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
trap aramaki_pg_stop EXIT

if [ $# -eq 0 ]; then
	set -- ./...
fi
go vet ./...
go test -count=1 -timeout 20m "$@"
