# Put in front of each guest script by run.sh: every 20 s the guest's vitals go to its console,
# which run.sh watches (no new vitals line for a while is a stalled guest) and prints when a run
# fails.
vitals() {
  while :; do
    echo "vitals $(cut -d' ' -f1 /proc/uptime)s: $(awk '/^(MemAvailable|Cached|Shmem|Dirty):/{printf "%s %d MB ", $1, $2/1024}' /proc/meminfo)load $(cut -d' ' -f1-3 /proc/loadavg); memory pressure $(head -1 /proc/pressure/memory 2>/dev/null); io pressure $(head -1 /proc/pressure/io 2>/dev/null)" > /dev/console
    sleep 20
  done
}
vitals & VITALS=$!
trap 'kill $VITALS 2>/dev/null' EXIT
