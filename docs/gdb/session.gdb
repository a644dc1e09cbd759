# docs/debugging.md as one unattended gdb session: what tests/debugger.rs runs
# with `gdb -batch`, while the test plays the two nc users over loopback:
#   gdb -batch -x docs/gdb/session.gdb --args target/debug/tcphub serve --port 0
# The test connects a subscriber and a publisher, then sends the hub SIGINT
# (what Ctrl-C does at the gdb prompt), then sends `/pub pickup A-1`.

source docs/gdb/walkthrough.gdb
run
# Stopped by SIGINT: every thread is parked in the kernel.
info threads
# Where the dispatcher waits: crossbeam's recv() parks the thread on a futex.
thread apply 2 backtrace 8
enable 1 2 3
continue
# Breakpoint 1: the client thread hands the parsed /pub to the channel.
print event
backtrace 4
continue
# Breakpoint 2: the dispatcher routes it.
print *command
backtrace 3
continue
# Breakpoint 3: the dispatcher writes the subscriber's share of the batch.
backtrace 4
tbreak sendmsg
continue
# The syscall itself: one sendmsg on the subscriber's socket.
finish
kill
