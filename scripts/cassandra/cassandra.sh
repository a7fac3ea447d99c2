#!/usr/bin/env bash
# Local Apache Cassandra 5.0 from Maven Central's cassandra-all jars (no Docker needed).
# usage: cassandra.sh fetch|up|down|status|wipe [NODES]    node N listens on 127.0.0.N:9042
#        cassandra.sh stop-node N | start-node N             (fault tests)
#        cassandra.sh nodetool N ARGS...                     (Cassandra's nodetool on node N's JMX port)
# env:   CASS_NODES (1), CASS_FIRST_NODE (1), CASS_HEAP (1G), CASS_BASE (.local/cassandra),
#        CASS_UNSAFE_SYSTEM (true: system and schema tables are not flushed on change, which makes
#        DDL fast; set false where nodes get SIGKILLed, or a restarted node forgets recent schema),
#        TM_CACHE (~/.cache/trade-migration). A second cluster can run beside the default one,
#        e.g. CASS_BASE=.local/ring CASS_FIRST_NODE=2 CASS_NODES=3 on 127.0.0.2-4.
# opt-in security (off by default; tests/integration/test_security.py runs a node with both):
#        CASS_AUTH=on       PasswordAuthenticator, CassandraAuthorizer, CassandraRoleManager, caches off
#                           (a GRANT or REVOKE applies at once); superuser cassandra/cassandra
#        CASS_TLS_DIR=DIR   client-to-node TLS only (no plaintext port): DIR/node.p12 is a PKCS#12
#                           keystore with the node's private key and certificate chain (keytool or
#                           Python's cryptography make one)
#        CASS_TLS_KEYSTORE_PASSWORD  its password (required with CASS_TLS_DIR; written only to the
#                           node's cassandra.yaml, mode 600; Cassandra does not log it)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CMD=${1:-status}
NODES=${CASS_NODES:-1}
[ "$CMD" = up ] && NODES=${2:-$NODES}
FIRST=${CASS_FIRST_NODE:-1}
LAST=$((FIRST + NODES - 1))
VERSION=$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$HERE/pom.xml")
CACHE=${TM_CACHE:-$HOME/.cache/trade-migration}/cassandra-$VERSION
BASE=$(mkdir -p "${CASS_BASE:-$REPO/.local/cassandra}" && cd "${CASS_BASE:-$REPO/.local/cassandra}" && pwd)
HEAP=${CASS_HEAP:-1G}
START_TIMEOUT=${CASS_START_TIMEOUT:-180}

die() { echo "cassandra.sh: $*" >&2; exit 1; }
node_dir() { echo "$BASE/node$1"; }
node_pid() { local f; f="$(node_dir "$1")/pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

need_tools() {
  command -v java >/dev/null || die "java not found: install a Java 17 JDK (Cassandra 5.0 runs on 11 or 17)"
  local v; v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ "$v" = 17 ] || [ "$v" = 11 ] || die "java $v found; Cassandra 5.0 needs Java 11 or 17 (set PATH or JAVA_HOME)"
}

fetch() {
  [ -f "$CACHE/.complete" ] && return 0
  command -v mvn >/dev/null || die "mvn not found: install Maven to fetch cassandra-all $VERSION from Maven Central"
  echo "fetching cassandra-all $VERSION and its runtime jars into $CACHE"
  rm -rf "$CACHE" && mkdir -p "$CACHE"
  cp "$HERE/pom.xml" "$CACHE/pom.xml"
  (cd "$CACHE" && mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$CACHE/lib" >"$CACHE/mvn.log" 2>&1) \
    || { tail -20 "$CACHE/mvn.log" >&2; die "mvn could not fetch cassandra-all $VERSION (log: $CACHE/mvn.log)"; }
  ls "$CACHE"/lib/cassandra-all-*.jar >/dev/null 2>&1 || die "cassandra-all jar missing after fetch"
  touch "$CACHE/.complete"
}

start_node() {
  local n=$1 ip=127.0.0.$1 dir; dir=$(node_dir "$1")
  if node_pid "$n" >/dev/null; then echo "node$n already running (pid $(node_pid "$n"))"; return 0; fi
  port_open "$ip" 9042 && die "$ip:9042 is taken by another process; stop it or run 'make db-down'"
  mkdir -p "$dir/logs" "$dir/tmp"
  local token seeds
  token=$(python3 -c "print(($n - $FIRST) * (2**64 // $NODES) - 2**63)")
  seeds=$(seq -s, -f '127.0.0.%g' "$FIRST" "$LAST")
  (umask 077 && sed -e "s|@IP@|$ip|g" -e "s|@DIR@|$dir|g" -e "s|@TOKEN@|$token|g" -e "s|@SEEDS@|$seeds|g" \
    "$HERE/node.yaml.tmpl" >"$dir/cassandra.yaml")
  local keystore=""
  if [ -n "${CASS_TLS_DIR:-}" ]; then keystore=$(tls_keystore); fi
  security_options "$keystore" >>"$dir/cassandra.yaml"
  : >"$dir/logs/system.log"
  # shellcheck disable=SC2046
  nohup java $(grep -v '^#' "$HERE/jvm17-cassandra.flags") \
    -Xms"$HEAP" -Xmx"$HEAP" -XX:MaxDirectMemorySize=512m \
    -javaagent:"$(ls "$CACHE"/lib/jamm-*.jar | head -1)" \
    -Djava.io.tmpdir="$dir/tmp" \
    -Dcassandra.config=file://"$dir/cassandra.yaml" \
    -Dcassandra.storagedir="$dir" -Dcassandra.logdir="$dir/logs" \
    -Dlogback.configurationFile="$HERE/logback.xml" \
    -Dcassandra-foreground=yes \
    -Dcassandra.jmx.local.port=$((7099 + 100 * n)) \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.superuser_setup_delay_ms=0 \
    -Dcassandra.ring_delay_ms=1000 \
    -Dcassandra.unsafesystem="${CASS_UNSAFE_SYSTEM:-true}" \
    -Dcassandra.available_processors=2 \
    -cp "$CACHE/lib/*" org.apache.cassandra.service.CassandraDaemon \
    >"$dir/logs/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  echo "node$n starting on $ip (pid $!, logs $dir/logs/system.log)"
}

# The opt-in auth and TLS settings (TLS: $1 = the node's keystore), appended to a node's cassandra.yaml.
security_options() {
  case "${CASS_AUTH:-off}" in
    on) cat <<'YAML'
authenticator:
  class_name: org.apache.cassandra.auth.PasswordAuthenticator
authorizer:
  class_name: org.apache.cassandra.auth.CassandraAuthorizer
role_manager:
  class_name: org.apache.cassandra.auth.CassandraRoleManager
roles_validity: 0ms
permissions_validity: 0ms
credentials_validity: 0ms
YAML
    ;;
    off) ;;
    *) die "CASS_AUTH must be on or off (got '$CASS_AUTH')" ;;
  esac
  [ -n "$1" ] || return 0
  printf 'client_encryption_options:\n  enabled: true\n  optional: false\n  require_client_auth: false\n'
  printf '  store_type: PKCS12\n  keystore: %s\n' "$1"
  # JSON string syntax is YAML too: any character of the password survives
  printf '  keystore_password: %s\n' \
    "$(python3 -c 'import json, os; print(json.dumps(os.environ["CASS_TLS_KEYSTORE_PASSWORD"]))')"
}

tls_keystore() {
  local dir ks; dir=$(cd "$CASS_TLS_DIR" 2>/dev/null && pwd) || die "CASS_TLS_DIR=$CASS_TLS_DIR is not a directory"
  ks=$dir/node.p12
  [ -s "$ks" ] && [ -r "$ks" ] \
    || die "keystore $ks is missing, empty or unreadable (CASS_TLS_DIR must hold node.p12: PKCS#12, the node's key and certificate chain)"
  [ -n "${CASS_TLS_KEYSTORE_PASSWORD:-}" ] || die "CASS_TLS_DIR is set but CASS_TLS_KEYSTORE_PASSWORD is empty (the password of $ks)"
  echo "$ks"
}

# Why a node stopped during start-up: the exception and its causes from the log (a wrong keystore
# password, an unreadable keystore, any configuration error), else the log's last lines.
start_failure() {
  local dir=$1 why
  why=$(grep -hE '^(ERROR .*|Caused by: .*|[a-z.]+Exception: .*)$' "$dir/logs/system.log" 2>/dev/null | awk '!seen[$0]++' | head -n 8 || true)
  if [ -n "$why" ]; then echo "$why" >&2; else tail -n 30 "$dir/logs/system.log" "$dir/logs/stdout.log" >&2; fi
}

wait_ready() {
  local n=$1 ip=127.0.0.$1 dir deadline=$((SECONDS + START_TIMEOUT)); dir=$(node_dir "$1")
  until port_open "$ip" 9042; do
    node_pid "$n" >/dev/null || { start_failure "$dir"; die "node$n exited during start-up (logs in $dir/logs)"; }
    [ $SECONDS -lt "$deadline" ] || die "node$n did not answer CQL on $ip:9042 within ${START_TIMEOUT}s (logs in $dir/logs)"
    sleep 1
  done
  if [ "$NODES" -gt 1 ]; then
    until [ "$(grep -c 'is now UP' "$dir/logs/system.log" || true)" -ge $((NODES - 1)) ]; do
      [ $SECONDS -lt "$deadline" ] || die "node$n does not see its $((NODES - 1)) peers (logs in $dir/logs)"
      sleep 1
    done
  fi
}

up() {
  need_tools; fetch
  for n in $(seq "$FIRST" "$LAST"); do start_node "$n"; done
  for n in $(seq "$FIRST" "$LAST"); do wait_ready "$n"; done
  echo "cassandra $VERSION: $NODES node(s) answering CQL on 127.0.0.$FIRST..$LAST:9042"
}

down() {
  local stopped=0 n pid
  for d in "$BASE"/node*; do
    [ -d "$d" ] || continue
    n=${d##*node}; pid=$(node_pid "$n" || true)
    [ -n "$pid" ] || continue
    kill "$pid"; stopped=1
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$d/pid"; echo "node$n stopped"
  done
  [ $stopped = 1 ] || echo "no local cassandra node running"
}

status() {
  local any=0
  for d in "$BASE"/node*; do
    [ -d "$d" ] || continue
    n=${d##*node}; any=1
    if pid=$(node_pid "$n"); then
      if port_open "127.0.0.$n" 9042; then s="up (CQL answering)"; else s="starting"; fi
      echo "node$n: $s, pid $pid, logs $d/logs/system.log"
    else echo "node$n: down, logs $d/logs/system.log"; fi
  done
  [ $any = 1 ] || echo "no local cassandra node configured under $BASE"
}

# Cassandra's own nodetool from the same jars, on node N's local JMX port (e.g. flush, tpstats).
nodetool() {
  local n=$1; shift
  node_pid "$n" >/dev/null || die "node$n is not running"
  local logs; logs="$(node_dir "$n")/logs/nodetool"; mkdir -p "$logs"
  # shellcheck disable=SC2046
  java $(grep -- '^--add-' "$HERE/jvm17-cassandra.flags") -Dlogback.configurationFile="$HERE/logback.xml" \
    -Dcassandra.logdir="$logs" -cp "$CACHE/lib/*" org.apache.cassandra.tools.NodeTool -p $((7099 + 100 * n)) "$@"
}

case "$CMD" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  stop-node) pid=$(node_pid "$2") && kill -9 "$pid" && rm -f "$(node_dir "$2")/pid" && echo "node$2 killed" ;;
  start-node) need_tools; start_node "$2"; wait_ready "$2" ;;
  status) status ;;
  wipe) down; rm -rf "$BASE"; echo "removed $BASE" ;;
  nodetool) shift; nodetool "$@" ;;
  *) die "unknown command '$CMD' (fetch|up|down|status|wipe|stop-node N|start-node N|nodetool N ARGS)" ;;
esac
