# The guest workload for a livepatch of a real kernel change (a probe of eng/kernel-oracle/run.sh, run after each
# module is loaded and enabled): processes, exits and signals, files, links and renames, pipes and sorting, the proc
# and sys file systems — while ftrace records which of the livepatch's new functions ran. Prints one line,
# "ran: NAME…", the __klp_new_ functions the trace saw.
t=/sys/kernel/tracing
[ -f $t/set_ftrace_filter ] || mount -t tracefs none $t
echo '__klp_new_*' > $t/set_ftrace_filter && echo > $t/trace && echo function > $t/current_tracer
mkdir -p /w
for i in 1 2 3; do
  cat /proc/self/stat /proc/self/status /proc/meminfo /proc/loadavg /proc/uptime /proc/mounts > /w/f$i
  ls -lR /proc/self /proc/sys /sys/kernel /sys/block /dev > /w/ls$i 2>&1
  sh -c 'kill -0 $$; sleep 0.1' & wait
  (trap 'exit 0' USR1; sleep 1) & p=$!; sleep 0.1; kill -USR1 $p; wait $p
  dd if=/dev/zero of=/w/z$i bs=4k count=16 2>/dev/null; sync
  mkdir /w/d$i; mv /w/f$i /w/d$i/; ln -s /w/d$i /w/s$i; rm -r /w/d$i /w/z$i /w/s$i /w/ls$i
  seq 1 2000 | sort -r | uniq | wc -l > /dev/null
done
# The trace is read before the tracer is switched off: switching clears it.
echo "ran: $(grep -o '__klp_new_[A-Za-z0-9_.]*' $t/trace | sort -u | paste -sd ' ' -)"
echo nop > $t/current_tracer; echo > $t/set_ftrace_filter
