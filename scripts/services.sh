#!/usr/bin/env bash
# Makes sure the machine's PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) are up,
# starting them with the machine's own commands when they are not. Fails loudly otherwise.
set -euo pipefail

wait_for() {  # name, check command...
    local name=$1; shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "$name is not reachable and could not be started" >&2
    return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
maria_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping; }

if ! pg_up 2>/dev/null; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
wait_for PostgreSQL pg_up

if ! maria_up 2>/dev/null; then
    echo "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
wait_for MariaDB maria_up
