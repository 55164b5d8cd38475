# The Ruby contender: Process.daemon (rb_daemon: fork, setsid, fork, chdir
# "/", stdio onto /dev/null), then the body of cmd/benchdaemon: one ready
# line, "pid monotonic-ns", into the FIFO named by BENCH_FIFO, and nothing
# else. Ruby's launcher exits right after its first fork, like the re-exec
# peers, but with no exec: the daemon is a fork of the running interpreter.

Process.daemon

File.open(ENV.fetch("BENCH_FIFO"), "w") do |f|
  f.syswrite("#{Process.pid} #{Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)}\n")
end
sleep
