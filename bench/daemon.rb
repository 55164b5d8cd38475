# The Ruby reference point: Process.daemon (rb_daemon: fork, setsid, fork,
# chdir "/", stdio onto /dev/null), then the body of cmd/benchdaemon.
# Ruby's launcher exits right after its first fork, like the re-exec peers,
# but with no exec: the daemon is a fork of the running interpreter.
require "socket"

# One line per program start, as benchdaemon's init() writes.
File.open(ENV.fetch("BENCH_INITLOG"), "a") { |f| f.syswrite("#{Process.pid}\n") }

Process.daemon

server = TCPServer.new("127.0.0.1", 0)
path = ENV.fetch("BENCH_PORTFILE")
File.write(path + ".tmp", "#{server.addr[1]} #{Process.pid}\n")
File.rename(path + ".tmp", path)
loop do
  c = server.accept
  begin
    c.write("hello\n")
  rescue SystemCallError
    # the harness's "ready at launcher exit" probe closes without reading
  end
  c.close
end
