#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with Go: installs what the
# tests need (git, the monitoring plugins, chromium, PostgreSQL) with apt-get when
# missing, starts a throwaway PostgreSQL on loopback, and runs every Go test
# against SQLite and PostgreSQL. .ci/run calls this same script.
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
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "test.sh: installing ${need_apt[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
trap aramaki_pg_stop EXIT

if [ $# -eq 0 ]; then
	set -- ./...
fi
go vet ./...
go test -count=1 -timeout 20m "$@"
