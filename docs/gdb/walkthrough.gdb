# The breakpoints of docs/debugging.md, for rust-gdb (or plain gdb).
#
#   make debug      builds target/debug/tcphub and starts
#                   rust-gdb -x docs/gdb/walkthrough.gdb --args target/debug/tcphub serve --port 3000
#
# The three breakpoints start disabled, so connecting and subscribing with nc
# does not stop the hub; `enable` them once you have looked at `info threads`.
# tests/debugger.rs runs this same file in `gdb -batch`.

set pagination off
set confirm off
set print thread-events off
# A client that hangs up mid-write makes the kernel raise SIGPIPE: not a bug.
handle SIGPIPE nostop noprint pass

# 1. a client thread hands a parsed command to the channel (src/reader.rs)
break tcphub::hub::reader::hand_over
# 2. the dispatcher decides who gets it (src/routing.rs)
break tcphub::proto::router::Router::handle
# 3. the dispatcher writes one recipient's lines with one sendmsg (src/hub/outbox.rs)
break tcphub::hub::outbox::Outbox::deliver
disable 1 2 3

echo \ntcphub walkthrough: 3 breakpoints set, disabled.\n
echo   run, connect two nc, Ctrl-C, info threads, enable, continue: see docs/debugging.md\n\n
