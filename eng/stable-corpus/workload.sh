# The guest workload for a livepatch of a real kernel change (a probe of eng/kernel-oracle/run.sh, run after each
# module is loaded and enabled): processes, exits and signals, files, links and renames, pipes and sorting, the proc
# and sys file systems, loopback networking — while ftrace records which of the livepatch's new functions ran. Prints
# one line, "ran: NAME…", the __klp_new_ functions the trace saw.
t=/sys/kernel/tracing
[ -f $t/set_ftrace_filter ] || mount -t tracefs none $t
# No new function loaded (after the module is gone): no filter, and no tracer, which would trace everything.
(echo '__klp_new_*' > $t/set_ftrace_filter) 2>/dev/null && echo > $t/trace && echo function > $t/current_tracer
mkdir -p /w
for i in 1 2 3; do
  cat /proc/self/stat /proc/self/status /proc/meminfo /proc/loadavg /proc/uptime /proc/mounts > /w/f$i
  ls -lR /proc/self /proc/sys /sys/kernel /sys/block /dev > /w/ls$i 2>&1
  sh -c 'kill -0 $$; sleep 0.1' & wait
  (trap 'exit 0' USR1; sleep 1) & p=$!; sleep 0.1; kill -USR1 $p; wait $p
  dd if=/dev/zero of=/w/z$i bs=4k count=16 2>/dev/null; sync
  mkdir /w/d$i; mv /w/f$i /w/d$i/; ln -s /w/d$i /w/s$i; rm -r /w/d$i /w/z$i /w/s$i /w/ls$i
  seq 1 2000 | sort -r | uniq | wc -l > /dev/null
  # Networking, where the kernel has it: ICMP and TCP over loopback, a Unix datagram socket (syslog).
  ifconfig lo 127.0.0.1 up 2>/dev/null
  ping -c 2 -W 1 127.0.0.1 > /dev/null 2>&1
  (nc -l -p 5555 > /w/nc 2>/dev/null &) ; sleep 0.2; echo hello | nc -w 1 127.0.0.1 5555 2>/dev/null
  syslogd -n -O /w/syslog 2>/dev/null & s=$!; sleep 0.2; logger "workload $i" 2>/dev/null; kill $s 2>/dev/null
  wait 2>/dev/null; rm -f /w/nc /w/syslog
done
# The trace is read before the tracer is switched off: switching clears it.
echo "ran: $(grep -o '__klp_new_[A-Za-z0-9_.]*' $t/trace | sort -u | paste -sd ' ' -)"
echo nop > $t/current_tracer; echo > $t/set_ftrace_filter
