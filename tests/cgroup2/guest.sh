#!/bin/sh
# The cgroup v2 suite, run as root inside the guest (run.sh boots it): a real `lamina server` on a
# pure cgroup v2 hierarchy, started in a delegated group as systemd would start it, stopped, and started
# again in the same group. Each check prints `ok` or fails the suite with what it saw.
# $D (set by run.sh above this line) holds the binary and the function package.
set -u
E=http://127.0.0.1:9001/2015-03-31/functions
LOG=$D/server.log
fail() { echo "FAIL: $*"; echo "--- server log"; tail -50 $LOG; exit 1; }
ok() { echo "ok: $*"; }
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || fail "/sys/fs/cgroup is not cgroup2"
echo "controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
PY=$(ls /usr/bin/python3.* 2>/dev/null | grep -E 'python3\.[0-9]+$' | sort -V | tail -1)
[ -n "$PY" ] || fail "no python3.X on the host"
# As systemd runs a service with Delegate=yes: in a group of its own, with the controllers
# enabled above it; the server moves itself into a leaf and puts its groups beside it.
SVC=/sys/fs/cgroup/test.slice/lamina.service
mkdir -p $SVC
echo "+memory +cpu +pids" > /sys/fs/cgroup/cgroup.subtree_control
echo "+memory +cpu +pids" > /sys/fs/cgroup/test.slice/cgroup.subtree_control
# The data directory on the guest's disk, as on a host (each /tmp is a loop device on a file there).
mkdir -p /tmp/ld && mount /dev/vda /tmp/ld || fail "cannot mount the guest's disk /dev/vda"
# Every process moved into a group, traced: PID 1 of an environment must be born in its group.
T=/sys/kernel/tracing
[ -e $T/events/cgroup ] || mount -t tracefs none $T || fail "cannot mount tracefs on $T"
echo 1 > $T/events/cgroup/cgroup_attach_task/enable || fail "cannot trace cgroup_attach_task"
# Starts the server in the service's group, as a supervisor would, logging to $1; SP is its pid.
start() {
  LOG=$1
  # Debug lines of the executor name each step of the shutdown.
  (echo 0 > $SVC/cgroup.procs && RUST_LOG=info,lamina_runtime_api=debug exec $D/lamina server --no-egress \
    --data-dir /tmp/ld --listen 127.0.0.1:9001) >$1 2>&1 &
  SP=$!
  up=0
  # Up to 5 minutes by the clock: under emulation the server's first start takes a minute or two.
  end=$(($(date +%s) + 300))
  while [ "$(date +%s)" -lt $end ]; do
    curl -s -m 5 -o /dev/null $E && { up=1; break; }
    # Refused a place in the group (EBUSY), or failed at start.
    kill -0 $SP 2>/dev/null || fail "the server exited at start"
    sleep 0.2
  done
  [ $up = 1 ] || fail "the server did not come up"
}
# Stops it with SIGTERM, bounded: a shutdown that hangs fails with where each thread waits.
stop() {
  kill -TERM $SP
  for i in $(seq 1 600); do kill -0 $SP 2>/dev/null || break; sleep 0.1; done
  if kill -0 $SP 2>/dev/null; then
    echo "the server has not exited 60 s after SIGTERM; its threads:"
    for t in /proc/$SP/task/*; do
      echo "== $(cat $t/comm) $(cat $t/wchan) $(sed -n 's/^State:\t//p' $t/status)"; cat $t/stack 2>/dev/null
    done
    echo "--- its groups"; find $SVC -name cgroup.events | while read f; do echo "$f: $(tr '\n' ' ' < $f) procs: $(cat ${f%/*}/cgroup.procs | tr '\n' ' ')"; done
    echo "--- processes"; ps -eo pid,ppid,stat,wchan:30,comm 2>/dev/null || ls /proc
    echo "--- mounts"; grep -E 'lamina|/tmp' /proc/self/mountinfo
    fail "shutdown hangs"
  fi
  wait $SP; rc=$?
  [ $rc = 0 ] || fail "server exit status $rc"
  left=$(ls -d $SVC/lamina-[0-9a-f]* /sys/fs/cgroup/lamina-* 2>/dev/null)
  [ -z "$left" ] || fail "cgroups left after shutdown: $left $(find $left -name cgroup.procs -exec cat {} +)"
  grep -E 'WARN|ERROR' $1 && fail "warnings in the server log $1"
  # As it was found, so that a supervisor other than systemd can start the next server in it.
  [ ! -e $SVC/lamina-server ] || fail "the server's leaf is left in the service's group: $(ls $SVC)"
  [ -z "$(cat $SVC/cgroup.subtree_control)" ] ||
    fail "controllers left enabled for the service group's children: $(cat $SVC/cgroup.subtree_control)"
}
start $D/server.log
grep -q 'cgroup v2' $D/server.log || fail "the server did not report cgroup v2: $(grep isolation $D/server.log)"
grep -q '/tmp on disk' $D/server.log || fail "/tmp is not on disk: $(grep isolation $D/server.log)"
ok "server up, isolation: $(grep -o 'cgroup v2[^;]*' $D/server.log | head -1)"
code=$(curl -s -m 300 -o $D/create.json -w '%{http_code}' -X POST $E -H 'content-type: application/json' \
  -d "{\"FunctionName\":\"v2\",\"Runtime\":\"$(basename $PY)\",\"Handler\":\"app.handler\",\"Role\":\"arn:aws:iam::000000000000:role/x\",\"MemorySize\":128,\"Timeout\":300,\"Code\":{\"ZipFile\":\"$(base64 -w0 $D/fn.zip)\"}}")
[ "$code" = 201 ] || fail "create: $code $(cat $D/create.json)"
inv() { curl -s -m 300 -D $D/h.txt -o $D/out.json -X POST $E/v2/invocations -d "$1"; }
inv '{"action":"echo"}'
grep -q '"uid"' $D/out.json || fail "invoke: $(cat $D/out.json)"
ok "invoked: $(cat $D/out.json)"
[ "$(cat /proc/$SP/cgroup)" = "0::/test.slice/lamina.service/lamina-server" ] ||
  fail "the server is in $(cat /proc/$SP/cgroup), not its leaf"
G=$(ls -d $SVC/lamina-[0-9a-f]* 2>/dev/null | head -1)
[ -n "$G" ] || fail "no lamina cgroup under the service's group: $(ls $SVC /sys/fs/cgroup)"
[ -z "$(ls -d /sys/fs/cgroup/lamina-* 2>/dev/null)" ] || fail "groups at the hierarchy's root"
ok "the server runs in its leaf, its groups under the service's group"
ENV=$(ls -d $G/env-* | head -1)
[ "$(cat $ENV/memory.max)" = 134217728 ] || fail "memory.max $(cat $ENV/memory.max)"
[ "$(cat $ENV/pids.max)" = 1024 ] || fail "pids.max $(cat $ENV/pids.max)"
set -- $(cat $ENV/cpu.max)
[ "$2" = 100000 ] && [ "$1" -gt 0 ] && [ "$1" -lt 100000 ] || fail "cpu.max $*"
ok "limits: memory.max 128 MiB, pids.max 1024, cpu.max $1/$2 (128 MB of 1769 MB per vCPU)"
sleep 1
grep -q 'frozen 1' $ENV/cgroup.events || fail "idle environment not frozen: $(cat $ENV/cgroup.events)"
ok "frozen when idle"
inv '{"action":"echo"}'
grep -q '"uid"' $D/out.json || fail "invoke after thaw: $(cat $D/out.json)"
ok "thawed for the next invocation"
# Max Memory Used is each invocation's own, not the environment's lifetime peak.
mem() { curl -s -m 300 -D $D/h.txt -o $D/out.json -H 'X-Amz-Log-Type: Tail' -X POST $E/v2/invocations -d "$1"
  sed -n 's/^[Xx]-[Aa]mz-[Ll]og-[Rr]esult: *//p' $D/h.txt | tr -d '\r' | base64 -d | sed -n 's/.*Max Memory Used: \([0-9]*\) MB.*/\1/p'; }
big=$(mem '{"action":"hog","mb":60}')
small=$(mem '{"action":"echo"}')
[ -n "$big" ] && [ -n "$small" ] || fail "no REPORT line in the log tail: $(cat $D/h.txt)"
[ "$big" -ge 60 ] && [ "$small" -lt $((big - 40)) ] ||
  fail "Max Memory Used: $big MB after 60 MB, then $small MB for an echo"
ok "Max Memory Used per invocation: $big MB holding 60 MB, then $small MB ($(uname -r))"
inv '{"action":"tmp","mb":200}'
grep -q '"uid"' $D/out.json || fail "200 MB into /tmp at 128 MB of memory: $(cat $D/out.json)"
ok "200 MB written to /tmp at 128 MB of memory (disk, not memory)"
inv '{"action":"hog","mb":400}'
grep -q 'Runtime.OutOfMemory' $D/out.json || fail "400 MB at 128 MB: $(cat $D/out.json)"
grep -qi 'x-amz-function-error' $D/h.txt || fail "no X-Amz-Function-Error on the OOM"
ok "out of memory reported as Runtime.OutOfMemory"
inv '{"action":"echo"}'
grep -q '"uid"' $D/out.json || fail "invoke after the OOM: $(cat $D/out.json)"
ok "a new environment after the OOM"
echo 0 > $T/events/cgroup/cgroup_attach_task/enable
grep -q 'dst_path=/test.slice/lamina.service/lamina-server ' $T/trace ||
  fail "the trace misses the server's own move into its leaf: $(grep -v '^#' $T/trace | head -5)"
moved=$(grep -c 'dst_path=[^ ]*/env-' $T/trace)
[ "$moved" = 0 ] || fail "$moved processes moved into environments' groups, where PID 1 is to be born (clone3 with CLONE_INTO_CGROUP): $(grep 'dst_path=[^ ]*/env-' $T/trace | head -3)"
ok "PID 1 of every environment born in its group: $(grep -c 'dst_path=' $T/trace) moves traced, none into one"
stop $D/server.log
ok "shutdown removed every cgroup and gave the service's group back as it found it"
# Started again in the same group, as a supervisor without systemd would: a group whose
# children still had controllers would refuse it.
start $D/server2.log
inv '{"action":"echo"}'
grep -q '"uid"' $D/out.json || fail "invoke after the restart: $(cat $D/out.json)"
[ "$(cat /proc/$SP/cgroup)" = "0::/test.slice/lamina.service/lamina-server" ] ||
  fail "the restarted server is in $(cat /proc/$SP/cgroup), not its leaf"
stop $D/server2.log
ok "restarted in the same group, invoked, stopped cleanly again"
echo PASS
