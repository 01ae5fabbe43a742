#!/bin/sh
# The packaged unit under systemd (PID 1 in the guest, cgroup v2): packaging/lamina.service with
# its hardening and Delegate=yes starts the server, which moves into its leaf and puts its groups
# in the service's group; a function runs; `systemctl stop` ends everything cleanly.
# $D (set by run.sh above this line) holds the binary, the function package, the unit and the
# default configuration.
set -u
E=http://127.0.0.1:9001/2015-03-31/functions
fail() { echo "FAIL: $*"; echo "--- journal"; journalctl -b --no-pager -u lamina | tail -40; exit 1; }
ok() { echo "ok ($(cut -d' ' -f1 /proc/uptime) s): $*"; }
[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is $(cat /proc/1/comm), not systemd"
PY=$(ls /usr/bin/python3.* 2>/dev/null | grep -E 'python3\.[0-9]+$' | sort -V | tail -1)
# The unit as packaged, but for where the binary lies here.
sed "s|/usr/bin/lamina|$D/lamina|" $D/lamina.service > /run/systemd/system/lamina.service
mkdir -p /etc/lamina && cp $D/lamina.toml /etc/lamina/lamina.toml
# /var is an overlay on the host's tree over 9p here, which loop devices (each /tmp) cannot use:
# the state directory is the guest's own disk, as on a host.
mkdir -p /var/lib/lamina && mount /dev/vda /var/lib/lamina && chmod 0700 /var/lib/lamina ||
  fail "cannot mount the guest's disk /dev/vda on /var/lib/lamina"
systemctl daemon-reload
# The unit's journal, as it is written, on the host's side: kept if the guest runs out of time.
# journald first: a follower started before its directory exists would never see it.
systemctl start systemd-journald
journalctl -f -n all --no-pager -u lamina > $D/journal.txt 2>&1 &
systemctl start lamina || fail "systemctl start lamina"
up=0
# Up to 5 minutes by the clock: under emulation the server's first start takes a minute or two.
end=$(($(date +%s) + 300))
while [ "$(date +%s)" -lt $end ]; do curl -s -m 5 -o /dev/null $E && { up=1; break; }; sleep 0.2; done
[ $up = 1 ] || fail "the server did not come up"
CG=/sys/fs/cgroup$(systemctl show -P ControlGroup lamina)
PID=$(systemctl show -P MainPID lamina)
[ "$(cat /proc/$PID/cgroup)" = "0::$(systemctl show -P ControlGroup lamina)/lamina-server" ] ||
  fail "the server is in $(cat /proc/$PID/cgroup), not its leaf under $CG"
ok "systemd started the unit; the server moved into $CG/lamina-server"
journalctl -b --no-pager -u lamina | grep -q 'cgroup v2' || fail "no cgroup v2 in the isolation line"
journalctl -b --no-pager -u lamina | grep -q '/tmp on disk' || fail "/tmp is not on disk: $(journalctl -b --no-pager -u lamina | grep -o '/tmp is a tmpfs[^;]*')"
ok "isolation: $(journalctl -b --no-pager -u lamina | grep -o 'cgroup v2[^;]*' | head -1)"
code=$(curl -s -m 300 -o $D/create.json -w '%{http_code}' -X POST $E -H 'content-type: application/json' \
  -d "{\"FunctionName\":\"sd\",\"Runtime\":\"$(basename $PY)\",\"Handler\":\"app.handler\",\"Role\":\"arn:aws:iam::000000000000:role/x\",\"MemorySize\":128,\"Timeout\":300,\"Code\":{\"ZipFile\":\"$(base64 -w0 $D/fn.zip)\"}}")
[ "$code" = 201 ] || fail "create: $code $(cat $D/create.json)"
curl -s -m 300 -o $D/out.json -X POST $E/sd/invocations -d '{"action":"tmp","mb":20}'
grep -q '"uid"' $D/out.json || fail "invoke: $(cat $D/out.json)"
ok "a function ran under the hardened unit, /tmp included: $(cat $D/out.json)"
ENV=$(ls -d $CG/lamina-[0-9a-f]*/env-* 2>/dev/null | head -1)
[ -n "$ENV" ] || fail "no environment group under $CG: $(ls $CG)"
[ "$(cat $ENV/memory.max)" = 134217728 ] || fail "memory.max $(cat $ENV/memory.max)"
ok "the environment's group is $ENV"
[ -d /var/lib/lamina ] && [ "$(stat -c %a /var/lib/lamina)" = 700 ] || fail "no state directory /var/lib/lamina (0700)"
ok "state in /var/lib/lamina"
# The unit gives the server 90 s (TimeoutStopSec) before it kills it: a stop that has not
# returned well after that is a failure of its own, with the journal to say where it stalled.
timeout 240 systemctl stop lamina
rc=$?
[ $rc != 124 ] || fail "systemctl stop lamina: no return within 240 s"
[ $rc = 0 ] || fail "systemctl stop lamina: exit $rc"
[ "$(systemctl show -P Result lamina)" = success ] || fail "stop: Result=$(systemctl show -P Result lamina)"
[ "$(systemctl show -P ExecMainStatus lamina)" = 0 ] || fail "exit status $(systemctl show -P ExecMainStatus lamina)"
[ ! -d $CG ] || fail "the service's group is left: $(find $CG -name cgroup.procs -exec cat {} +)"
journalctl -b --no-pager -u lamina | grep -E ' (WARN|ERROR) ' && fail "warnings in the journal"
ok "systemctl stop: exit 0, no group left"
# Other servers on the host may hold locks there: the unit's stop keeps its runtime directory.
[ -d /run/lamina ] && [ -n "$(ls /run/lamina)" ] || fail "/run/lamina was removed at the stop"
ok "/run/lamina kept: $(ls /run/lamina | tr '\n' ' ')"
echo PASS
