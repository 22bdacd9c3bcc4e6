# shellcheck shell=bash
#
# postgres.sh starts a throwaway PostgreSQL server for the tests and exports
# its address as ARAMAKI_TEST_POSTGRES. Source it, do not run it:
#
#     source scripts/postgres.sh || exit 1
#     trap aramaki_pg_stop EXIT
#     go test ./...
#
# When ARAMAKI_TEST_POSTGRES is set already, it does nothing (and
# aramaki_pg_stop then leaves that server alone).
#
# It works on a fresh Debian machine as root: when initdb and pg_ctl are
# neither on PATH nor in /usr/lib/postgresql/*/bin it installs the
# "postgresql" package. The cluster lives in a new temporary directory owned
# by the postgres user (PostgreSQL refuses to run as root), listens on
# 127.0.0.1 on a free port and a socket in that directory, trusts every
# local connection and runs with fsync off: it is for tests only and is gone
# after aramaki_pg_stop.

aramaki_pg_dir=""
aramaki_pg_bin=""

# aramaki_pg_stop stops the server started by this script and removes its
# directory. Safe to call more than once.
aramaki_pg_stop() {
	if [ -n "$aramaki_pg_dir" ] && [ -d "$aramaki_pg_dir" ]; then
		aramaki_pg_as_owner "$aramaki_pg_bin/pg_ctl" -D "$aramaki_pg_dir/data" -m fast -w stop >/dev/null 2>&1
		rm -rf "$aramaki_pg_dir"
		unset ARAMAKI_TEST_POSTGRES
	fi
	aramaki_pg_dir=""
}

# aramaki_pg_as_owner runs a command as the owner of the cluster: the
# postgres user when we are root, else ourselves.
aramaki_pg_as_owner() {
	if [ "$(id -u)" = 0 ]; then
		(cd "$aramaki_pg_dir" && "$(aramaki_pg_sbin runuser)" -u postgres -- "$@")
	else
		(cd "$aramaki_pg_dir" && "$@")
	fi
}

# aramaki_pg_sbin finds an administration command that may not be on PATH.
aramaki_pg_sbin() {
	command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || echo "/sbin/$1"
}

aramaki_pg_find_bin() {
	local d
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v pg_ctl)")"
		return 0
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

aramaki_pg_start() {
	local port tries
	aramaki_pg_bin=$(aramaki_pg_find_bin) || aramaki_pg_bin=""
	if [ -z "$aramaki_pg_bin" ]; then
		echo "postgres.sh: installing PostgreSQL" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2 ||
			{ echo "postgres.sh: cannot install PostgreSQL" >&2; return 1; }
		aramaki_pg_bin=$(aramaki_pg_find_bin) || { echo "postgres.sh: no initdb after installing PostgreSQL" >&2; return 1; }
	fi
	if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
		"$(aramaki_pg_sbin useradd)" --system --home-dir /var/lib/postgresql --shell /bin/bash postgres ||
			{ echo "postgres.sh: cannot create the postgres user" >&2; return 1; }
	fi

	aramaki_pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/aramaki-pg.XXXXXX") || return 1
	chmod 755 "$aramaki_pg_dir"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$aramaki_pg_dir"
	fi
	if ! aramaki_pg_as_owner "$aramaki_pg_bin/initdb" -D "$aramaki_pg_dir/data" -U postgres -A trust \
		-E UTF8 --locale=C --no-sync >"$aramaki_pg_dir/initdb.log" 2>&1; then
		cat "$aramaki_pg_dir/initdb.log" >&2
		echo "postgres.sh: initdb failed" >&2
		aramaki_pg_stop
		return 1
	fi

	# Pick a port nobody answers on; should another process take it before
	# the server binds, the start fails and the next port is tried.
	for tries in 1 2 3 4 5 6 7 8 9 10; do
		port=$((20000 + RANDOM % 40000))
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			continue
		fi
		if aramaki_pg_as_owner "$aramaki_pg_bin/pg_ctl" -D "$aramaki_pg_dir/data" -l "$aramaki_pg_dir/server.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $aramaki_pg_dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
			start >/dev/null 2>&1; then
			break
		fi
		port=""
	done
	if [ -z "$port" ]; then
		cat "$aramaki_pg_dir/server.log" >&2 2>/dev/null
		echo "postgres.sh: PostgreSQL did not start" >&2
		aramaki_pg_stop
		return 1
	fi
	# pg_ctl -w waited for the server already; pg_isready, where installed,
	# checks that it accepts connections on the TCP port.
	for tries in $(seq 1 60); do
		if [ ! -x "$aramaki_pg_bin/pg_isready" ] || "$aramaki_pg_bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
			export ARAMAKI_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
			echo "postgres.sh: PostgreSQL $("$aramaki_pg_bin/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port (stop with aramaki_pg_stop)" >&2
			return 0
		fi
		sleep 0.5
	done
	echo "postgres.sh: PostgreSQL is not ready" >&2
	aramaki_pg_stop
	return 1
}

if [ -z "${ARAMAKI_TEST_POSTGRES:-}" ]; then
	aramaki_pg_start
fi
