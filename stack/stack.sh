#!/usr/bin/env bash
# The local stack without Docker: Apache Kafka (KRaft, single node) and Redis on 127.0.0.1.
#   stack/stack.sh up|down|status|reset|libs   (libs: fetch the broker's jars, print their folder)
# Environment (all optional):
#   STREAMPROC_KAFKA_PORT (9092)  STREAMPROC_KAFKA_CONTROLLER_PORT (kafka port + 1)
#   STREAMPROC_REDIS_PORT (6379)  STREAMPROC_STACK_DIR (.stack in the repo: data, logs, pids)
#   STREAMPROC_CACHE_DIR (~/.cache/streamproc: the broker's jars, kept across clones)
#   KAFKA_VERSION (the pom's, 3.9.2)  STREAMPROC_STACK_TIMEOUT (90 seconds to become ready)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_PORT="${STREAMPROC_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${STREAMPROC_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
REDIS_PORT="${STREAMPROC_REDIS_PORT:-6379}"
STACK_DIR="${STREAMPROC_STACK_DIR:-$ROOT/.stack}"
CACHE_DIR="${STREAMPROC_CACHE_DIR:-$HOME/.cache/streamproc}"
KAFKA_VERSION="${KAFKA_VERSION:-3.9.2}"
TIMEOUT="${STREAMPROC_STACK_TIMEOUT:-90}"
LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"
KAFKA_DIR="$STACK_DIR/kafka"
REDIS_DIR="$STACK_DIR/redis"

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The pid in $1 is alive and is the program we started (its command line contains $2).
ours_alive() {
  local pidfile="$1" marker="$2" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$marker"
}

apt_install() {
  say "installing $* with apt-get"
  if [[ "$(id -u)" -ne 0 ]]; then die "$* missing; install it: sudo apt-get install $*"; fi
  if [[ ! -f "$CACHE_DIR/.apt-updated" ]]; then
    apt-get update -qq && mkdir -p "$CACHE_DIR" && touch "$CACHE_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-cli >/dev/null || apt_install redis-tools
  # promtool (the alert rules' tests) and a Prometheus server (the scrape test); the stack
  # does not run one
  command -v promtool >/dev/null || apt_install --no-install-recommends prometheus
  if [[ ! -f "$LIBS/.complete" ]]; then
    command -v mvn >/dev/null || apt_install maven
  fi
}

fetch_kafka_jars() {
  [[ -f "$LIBS/.complete" ]] && return 0
  say "fetching Apache Kafka $KAFKA_VERSION jars with Maven into $LIBS"
  rm -rf "$LIBS" && mkdir -p "$LIBS"
  mvn -q -B -Dstyle.color=never -f "$ROOT/stack/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS" \
    || die "Maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see above)"
  touch "$LIBS/.complete"
}

write_kafka_config() {
  mkdir -p "$KAFKA_DIR/data"
  cat >"$KAFKA_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  cat >"$KAFKA_DIR/log4j.properties" <<'PROPS'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
PROPS
}

KAFKA_JAVA=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" -cp "$LIBS/*")

wait_until() {  # wait_until WHAT PIDFILE LOG CHECK...
  local what="$1" pidfile="$2" log="$3"; shift 3
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      tail -n 40 "$log" >&2 || true
      die "$what exited while starting; its log's tail is above ($log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$log" >&2 || true
      die "$what not ready after ${TIMEOUT}s; its log's tail is above ($log)"
    fi
    sleep 0.5
  done
}

kafka_ready() { port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$KAFKA_DIR/kafka.log"; }

start_kafka() {
  if ours_alive "$KAFKA_DIR/kafka.pid" kafka.Kafka; then
    say "kafka already running (pid $(cat "$KAFKA_DIR/kafka.pid"), 127.0.0.1:$KAFKA_PORT)"
    return 0
  fi
  for port in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    port_open "$port" && die "port $port is taken by another process; set STREAMPROC_KAFKA_PORT"
  done
  fetch_kafka_jars
  write_kafka_config
  if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
    local cluster_id  # the tool's stdout also carries a log4j line: keep only the id
    cluster_id="$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null \
      | grep -Eo '^[A-Za-z0-9_-]{22}$' | tail -n 1)"
    [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid gave no cluster id"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
      -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1 \
      || { cat "$KAFKA_DIR/format.log" >&2; die "formatting Kafka storage failed"; }
  fi
  : >"$KAFKA_DIR/kafka.log"
  nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" >>"$KAFKA_DIR/kafka.log" 2>&1 &
  echo $! >"$KAFKA_DIR/kafka.pid"
  wait_until kafka "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/kafka.log" kafka_ready
  say "kafka $KAFKA_VERSION ready on 127.0.0.1:$KAFKA_PORT (pid $(cat "$KAFKA_DIR/kafka.pid"))"
}

redis_ready() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

start_redis() {
  mkdir -p "$REDIS_DIR"
  if ours_alive "$REDIS_DIR/redis.pid" redis-server; then
    say "redis already running (pid $(cat "$REDIS_DIR/redis.pid"), 127.0.0.1:$REDIS_PORT)"
    return 0
  fi
  port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by another process; set STREAMPROC_REDIS_PORT"
  : >"$REDIS_DIR/redis.log"
  # No persistence: the stack is for development and tests; features are rebuilt by replay.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid"
  local deadline=$((SECONDS + 10))
  until [[ -s "$REDIS_DIR/redis.pid" ]]; do
    ((SECONDS < deadline)) || { tail -n 20 "$REDIS_DIR/redis.log" >&2; die "redis did not start"; }
    sleep 0.1
  done
  wait_until redis "$REDIS_DIR/redis.pid" "$REDIS_DIR/redis.log" redis_ready
  say "redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') ready on 127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_DIR/redis.pid"))"
}

stop_one() {  # stop_one NAME PIDFILE MARKER
  local name="$1" pidfile="$2" marker="$3" pid
  if ! ours_alive "$pidfile" "$marker"; then
    rm -f "$pidfile"
    say "$name not running (nothing of ours to stop)"
    return 0
  fi
  pid="$(cat "$pidfile")"
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop in 30s; killing it"
    kill -KILL "$pid" || true
  fi
  rm -f "$pidfile"
  say "$name stopped (pid $pid)"
}

status_one() {  # status_one NAME PIDFILE MARKER PORT
  if ours_alive "$2" "$3"; then
    say "$1 running: pid $(cat "$2"), 127.0.0.1:$4"
  else
    say "$1 stopped"
    return 1
  fi
}

case "${1:-}" in
  up)
    ensure_tools
    start_kafka
    start_redis
    ;;
  down)
    stop_one kafka "$KAFKA_DIR/kafka.pid" kafka.Kafka
    stop_one redis "$REDIS_DIR/redis.pid" redis-server
    ;;
  status)
    rc=0
    status_one kafka "$KAFKA_DIR/kafka.pid" kafka.Kafka "$KAFKA_PORT" || rc=1
    status_one redis "$REDIS_DIR/redis.pid" redis-server "$REDIS_PORT" || rc=1
    exit "$rc"
    ;;
  libs)  # for tests that run brokers of their own (tests/harness): the classpath folder
    ensure_tools >&2
    fetch_kafka_jars >&2
    echo "$LIBS"
    ;;
  reset)  # stop, then forget all broker data (topics, offsets)
    "$0" down
    rm -rf "$KAFKA_DIR" "$REDIS_DIR"
    say "stack data removed ($STACK_DIR)"
    ;;
  *)
    echo "usage: $0 up|down|status|reset|libs" >&2
    exit 2
    ;;
esac
