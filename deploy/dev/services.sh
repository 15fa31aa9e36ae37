#!/usr/bin/env bash
# Makes sure the servers the tests need are installed, running and set up, idempotently:
#   PostgreSQL  127.0.0.1:5432  role postgres, trust auth from 127.0.0.1
#   MariaDB     127.0.0.1:3306  root@127.0.0.1 with an empty password
#   RabbitMQ    127.0.0.1:5672  guest/guest
# On this project's machines they already run; on a fresh Debian machine this installs them
# (needs root). It never stops or reconfigures a server that already answers.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
wait_for() { # name, tries, command...
  local name=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "$name did not come up"; return 1
}

missing=()
command -v psql >/dev/null || missing+=(postgresql postgresql-contrib)
command -v mariadb >/dev/null || missing+=(mariadb-server mariadb-client)
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

pg_up() { psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1'; }
if ! pg_up >/dev/null 2>&1; then
  log "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  if ! wait_for PostgreSQL 5 pg_up; then
    # A fresh install asks for passwords over TCP; the test servers trust loopback.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | tail -1)
    as_root sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main reload || true
    wait_for PostgreSQL 30 pg_up
  fi
fi

my_up() { mariadb -h 127.0.0.1 -P 3306 -u root -e 'select 1'; }
if ! my_up >/dev/null 2>&1; then
  if ! mariadb -u root -e 'select 1' >/dev/null 2>&1; then
    log "starting MariaDB"
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for MariaDB 30 mariadb -u root -e 'select 1'
  fi
  if ! my_up >/dev/null 2>&1; then
    log "allowing root@127.0.0.1 without a password (test server only)"
    as_root mariadb -u root -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION"
  fi
  wait_for MariaDB 10 my_up
fi

amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) ; }
if ! amqp_up 2>/dev/null; then
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached || true
  wait_for RabbitMQ 60 amqp_up
fi
log "PostgreSQL, MariaDB and RabbitMQ are up"
