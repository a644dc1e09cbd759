//! The readiness-loop twin: protocol v1 on one thread and `poll(2)`.
//!
//! What tokio does underneath, without the runtime. Every socket is
//! *non-blocking*: a `read` with nothing to read, an `accept` with nobody
//! waiting, a `write` to a full buffer return at once with `WouldBlock`
//! instead of putting the thread to sleep. The one place this program
//! sleeps is `poll(2)`: it hands the kernel the list of every socket and
//! what it wants from each (bytes to read, room to write), and the kernel
//! wakes the thread when at least one of them is *ready*. Then the loop
//! does, for each ready socket, exactly one step that cannot block, and
//! goes back to `poll`.
//!
//! Same flags as `tcphub serve`, same `listening on <addr>` line, and the
//! same IO-free core (`src/proto/`): [`LineFramer`] cuts and parses lines,
//! one [`Router`] decides who gets what and batches it, and
//! [`clients::Clients`] is this twin's [`Outlet`]: the threaded hub's own
//! non-waiting [`tcphub::hub::outbox::Outbox`] per client, so a client
//! that stops reading gets its lines kept (up to `--max-pending`, for at
//! most `--write-timeout-ms`) and nobody else waits.
//!
//! | the threaded hub                  | this loop                              |
//! | --------------------------------- | -------------------------------------- |
//! | `acceptor` blocks in `accept()`   | the listener is in the poll list       |
//! | `client-<id>` blocks in `read()`  | each client is in the poll list        |
//! | lines cross a channel             | lines go straight to the router        |
//! | `dispatcher` writes each share    | the same, then `POLLOUT` for the rest  |
//! | a read timeout per thread         | `poll`'s timeout: the nearest deadline |
//!
//! Run it with `cargo run --release --example poll_hub -- --port 0`.

mod clients;
mod monitor;

use std::fs::File;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use log::{debug, info, warn};

use tcphub::cli::ServeArgs;
use tcphub::hub::events::PerIp;
use tcphub::hub::outbox::Outbox;
use tcphub::hub::score::{Counters, Scoreboard, Slot, State};
use tcphub::proto::admission::Admission;
use tcphub::proto::client_line::Refusal;
use tcphub::proto::framing::{Inbound, LineFramer};
use tcphub::proto::quiet::Quiet;
use tcphub::proto::router::{ClientId, Router};
use tcphub::proto::server_line::{ErrorCode, ServerLine, server_full_line};

use clients::{Client, Clients, Reading};

/// The readiness-loop twin of `tcphub serve`; it takes exactly the same
/// flags. The channel flags (`--channel-capacity`, `--channel-bytes`) are
/// accepted and mean nothing here: there is no channel, a line is routed
/// as soon as it is read.
#[derive(Debug, Parser)]
#[command(name = "poll_hub", version)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// After `accept()` failed for a reason other than running out of
/// descriptors, the listener leaves the poll list this long (else `poll`
/// would report it ready again at once, and the loop would spin).
const ACCEPT_BACK_OFF: Duration = Duration::from_millis(50);
/// Connections taken per wake-up, at most: a storm of connects must not
/// keep the loop from the clients already in.
const ACCEPTS_PER_WAKE: usize = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tcphub::cli::init_logging();
    let args = cli.serve;
    let config = args.config();
    let listener = match TcpListener::bind((args.host.as_str(), args.port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "poll_hub: cannot listen on {}:{}: {e}",
                args.host, args.port
            );
            return ExitCode::from(2);
        }
    };
    // Non-blocking, so that an `accept()` after a connection gave up
    // between `poll` and `accept` returns WouldBlock instead of stopping
    // every client's loop until somebody else connects.
    let addr = match listener.set_nonblocking(true).and(listener.local_addr()) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("poll_hub: cannot set up the listener: {e}");
            return ExitCode::from(2);
        }
    };
    println!("listening on {addr}");
    let admission = Arc::new(Admission::new(config.max_clients));
    let score = Arc::new(Scoreboard::new());
    let monitor = match &args.monitor {
        None => None,
        Some(spec) => match monitor::Monitor::bind(spec, addr, &config, admission.clone()) {
            Ok(monitor) => {
                println!("monitor on http://{}/", monitor.addr());
                Some(monitor)
            }
            Err(e) => {
                eprintln!("poll_hub: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let per_ip = Arc::new(PerIp::new(config.max_per_ip));
    let mut hub = PollHub {
        listener,
        listen_again_at: None,
        spare: spare_descriptor(),
        router: Router::new(admission.clone()).with_max_subs(config.max_subs),
        clients: Clients::new(&config, score.clone(), per_ip.clone()),
        admission,
        per_ip,
        quiet: Quiet {
            line: config.line_timeout,
            idle: config.idle_timeout,
        },
        max_line: config.max_line,
        me: score.register_thread("poll-loop"),
        score,
        monitor,
        fds: Vec::new(),
        polled: Vec::new(),
        expired: Vec::new(),
        taken: 0,
    };
    match hub.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poll_hub: poll failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One descriptor held in reserve, as the threaded hub's acceptor does:
/// with every other one in use, `accept()` fails with EMFILE and the
/// client would wait unanswered. Closing the spare makes room to accept it
/// and tell it why it is refused.
fn spare_descriptor() -> Option<File> {
    File::open("/dev/null").ok()
}

/// Everything the one thread owns. No locks are needed for any of it (the
/// [`PerIp`] count has one, because the threaded hub shares it between
/// two threads; here only this thread takes it).
struct PollHub {
    listener: TcpListener,
    /// Set after a failed `accept()`: leave the listener out of the poll
    /// list until then.
    listen_again_at: Option<Instant>,
    spare: Option<File>,
    router: Router,
    clients: Clients,
    admission: Arc<Admission>,
    per_ip: Arc<PerIp>,
    quiet: Quiet,
    max_line: usize,
    score: Arc<Scoreboard>,
    /// This thread's row in the live view.
    me: Arc<Slot>,
    monitor: Option<monitor::Monitor>,
    /// The poll list, rebuilt before every `poll`: `fds[0]` is the
    /// listener, then the monitor's sockets, then one per client.
    fds: Vec<libc::pollfd>,
    /// Which client each entry after the monitor's is.
    polled: Vec<ClientId>,
    /// Clients whose line or idle timeout passed, found while building the
    /// poll list: told off after the poll.
    expired: Vec<(ClientId, Refusal)>,
    /// Events routed into the current batch (the batch bounds both servers
    /// share: [`Router::batch_has_room`]).
    taken: usize,
}

impl PollHub {
    /// The whole life of the thread: build the list, wait in `poll`, do one
    /// step per ready socket, flush the batch. Only a failing `poll` ends it.
    fn run(&mut self) -> io::Result<()> {
        loop {
            let now = Instant::now();
            let wait = self.build_poll_list(now);
            self.me.enter(State::Recv);
            // The one call that sleeps. It returns how many entries have
            // something in `revents`: readable (POLLIN), writable (POLLOUT),
            // hung up or failed (POLLHUP, POLLERR); 0 if the timeout passed.
            let ready = poll(&mut self.fds, wait)?;
            self.me.enter(State::Route);
            debug!("poll() returned {ready} ready of {}", self.fds.len());
            if ready > 0 {
                self.on_ready();
            }
            for (id, refusal) in std::mem::take(&mut self.expired) {
                self.kick(id, refusal);
            }
            self.me.enter(State::Flush);
            self.flush();
        }
    }

    /// Fills `fds` (what to watch for each socket) and `expired`; returns
    /// how long `poll` may wait: until the nearest deadline (a line or idle
    /// timeout, the write timeout of a client behind, the monitor's
    /// request deadline, the accept back-off), or for ever (`None`).
    fn build_poll_list(&mut self, now: Instant) -> Option<Duration> {
        self.fds.clear();
        self.polled.clear();
        let mut wait: Option<Duration> = None;
        let mut sooner = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
        // A listener out of the list is still there (fd -1 is ignored), so
        // `fds[0]` is always the listener.
        let listening = match self.listen_again_at {
            Some(at) if at > now => {
                sooner(at - now);
                false
            }
            _ => true,
        };
        let fd = if listening {
            raw_fd(&self.listener)
        } else {
            -1
        };
        self.fds.push(pollfd(fd, libc::POLLIN));
        if let Some(monitor) = &self.monitor
            && let Some(d) = monitor.poll_list(&mut self.fds, now)
        {
            sooner(d);
        }
        for (&id, client) in self.clients.open.iter() {
            let mut events = 0;
            if let Some(reading) = &client.reading {
                events |= libc::POLLIN;
                let (line_age, idle_age) = reading.ages(now);
                if let Some(refusal) = self.quiet.expired(line_age, idle_age) {
                    self.expired.push((id, refusal));
                } else if let Some(d) = self.quiet.wait(line_age, idle_age) {
                    sooner(d);
                }
            }
            if client.outbox.pending() > 0 {
                // Room in its send buffer is what it waits for now.
                events |= libc::POLLOUT;
                if let Some(since) = client.outbox.waiting_since() {
                    sooner((since + self.clients.write_timeout).saturating_duration_since(now));
                }
            }
            self.fds
                .push(pollfd(raw_fd(&*client.outbox.socket), events));
            self.polled.push(id);
        }
        if !self.expired.is_empty() {
            wait = Some(Duration::ZERO);
        }
        wait
    }

    /// One step for each socket `poll` said is ready.
    fn on_ready(&mut self) {
        if self.fds[0].revents & libc::POLLIN != 0 {
            self.accept_waiting();
        }
        let first_client = self.fds.len() - self.polled.len();
        if let Some(monitor) = &mut self.monitor {
            monitor.on_ready(&self.fds[1..first_client], &self.score);
        }
        for i in 0..self.polled.len() {
            let (id, revents) = (self.polled[i], self.fds[first_client + i].revents);
            if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                self.read_client(id);
            }
            if revents & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0 {
                self.clients.drain(id);
            }
        }
    }

    /// Takes the connections waiting in the listen queue, a bounded number
    /// per wake-up, until `accept()` says WouldBlock (none left).
    fn accept_waiting(&mut self) {
        for _ in 0..ACCEPTS_PER_WAKE {
            match self.listener.accept() {
                Ok((socket, peer)) => {
                    Counters::add(&self.score.counters.accepted);
                    self.admit(socket, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.accept_failed(&e),
            }
        }
    }

    /// Out of descriptors with the spare in hand: give it back, take the
    /// waiting client, say why it is refused, take the spare again. Any
    /// other failure: leave the listener out of the poll list for a while.
    fn accept_failed(&mut self, e: &io::Error) {
        warn!("accept failed: {e}");
        let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        if out_of_fds && self.spare.take().is_some() {
            if let Ok((socket, _)) = self.listener.accept() {
                let text = "the hub is out of file descriptors; try again later";
                self.refuse(socket, ErrorCode::ServerFull, text);
            }
            self.spare = spare_descriptor();
            return;
        }
        self.listen_again_at = Some(Instant::now() + ACCEPT_BACK_OFF);
        if self.spare.is_none() {
            self.spare = spare_descriptor();
        }
    }

    /// Admission (per address, then the hub's places), socket options, and
    /// the router's `WELCOME` and `JOIN`s. Whatever was taken is given
    /// back when a later step fails.
    fn admit(&mut self, socket: TcpStream, peer: SocketAddr) {
        if !self.per_ip.try_admit(peer.ip()) {
            warn!("{peer} refused: too many connections from its address");
            let text = "too many connections from your address (--max-per-ip)";
            return self.refuse(socket, ErrorCode::ServerFull, text);
        }
        let Some(id) = self.admission.try_admit() else {
            warn!("{peer} refused: server full");
            self.per_ip.release(peer.ip());
            return self.refuse_with(socket, &server_full_line());
        };
        // Non-blocking, so that a read or a write on it can never put the
        // one thread to sleep; no Nagle, because lines are short and
        // already batched: send them at once.
        if let Err(e) = socket.set_nonblocking(true).and(socket.set_nodelay(true)) {
            warn!("dropping {peer}: cannot set up its socket: {e}");
            self.admission.release();
            self.per_ip.release(peer.ip());
            return;
        }
        let slot = self.score.register_client(id, peer);
        slot.enter(State::Read);
        let nick = self.router.connect(id);
        info!("{peer} connected as {nick}");
        if let Some(c) = slot.client() {
            c.publish(nick, 0, true);
        }
        let reading = Reading::new(LineFramer::new(self.max_line).telnet(true));
        let outbox = Outbox::new(Arc::new(socket), peer);
        let client = Client {
            reading: Some(reading),
            outbox,
            slot,
        };
        self.clients.open.insert(id, client);
        self.after_event();
    }

    /// `ERR <code> <text>` to a connection the hub will not serve, then close.
    fn refuse(&mut self, socket: TcpStream, code: ErrorCode, text: &str) {
        let mut line = Vec::new();
        ServerLine::Err { code, text }.encode(&mut line);
        self.refuse_with(socket, &line);
    }

    /// One line to a connection never admitted, then close. Non-blocking
    /// first: a fresh socket's buffer is empty, so the line goes at once,
    /// and if it somehow did not, this thread must not wait for it.
    fn refuse_with(&mut self, socket: TcpStream, line: &[u8]) {
        use std::io::Write;
        Counters::add(&self.score.counters.refused_full);
        let _ = socket.set_nonblocking(true);
        let _ = (&socket).write(line);
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }

    /// `poll` said this client is readable (or hung up): one `read()`, not
    /// a loop until WouldBlock, so that a flooder gets one buffer per
    /// wake-up like everyone else. Every whole line goes to the router.
    fn read_client(&mut self, id: ClientId) {
        let Some(client) = self.clients.open.get_mut(&id) else {
            return;
        };
        let Some(reading) = client.reading.as_mut() else {
            return;
        };
        let read = (&*client.outbox.socket).read(reading.framer.spare());
        let n = match read {
            Ok(0) => return self.end_of_input(id, "end of stream".to_string()),
            Ok(n) => n,
            // Readable a moment ago, not now (or a signal): next time.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return;
            }
            Err(e) => return self.end_of_input(id, format!("read error: {e}")),
        };
        debug!("read() from {id} returned {n} bytes");
        client.slot.read_returned(n);
        reading.framer.filled(n);
        reading.last_read = Instant::now();
        self.route_lines(id);
    }

    /// Every whole line the framer holds for `id`, to the router, in order.
    /// The client is looked up again for each line: a full batch is
    /// flushed in between, and that may cut this very client off.
    fn route_lines(&mut self, id: ClientId) {
        loop {
            let Some(client) = self.clients.open.get_mut(&id) else {
                return;
            };
            let Some(reading) = client.reading.as_mut() else {
                return;
            };
            let Some(line) = reading.framer.next_inbound() else {
                reading.note_line_progress();
                // Its row in the live view: waiting for its bytes again.
                client.slot.enter(State::Read);
                return;
            };
            if line.is_quit() {
                // Lines after /quit are ignored, as the contract says.
                client.reading = None;
            }
            client.slot.lines_in(1);
            self.router.on_line(id, &line);
            self.score
                .note_line(Some(&client.slot), &self.router, id, &line);
            self.after_event();
        }
    }

    /// End of stream or a read error: stop watching for input (an ended
    /// stream is always "readable", so leaving it in the list would spin),
    /// and tell the router, which answers what came before and closes.
    fn end_of_input(&mut self, id: ClientId, why: String) {
        debug!("{id}: {why}");
        if let Some(client) = self.clients.open.get_mut(&id) {
            client.reading = None;
        }
        self.router.disconnect(id, &why);
        self.after_event();
    }

    /// A line or idle timeout passed: `ERR <code>`, then the end of it.
    fn kick(&mut self, id: ClientId, refusal: Refusal) {
        let Some(client) = self.clients.open.get_mut(&id) else {
            return;
        };
        client.reading = None;
        let why = format!("{}: {}", refusal.code, refusal.text);
        self.router.on_line(id, &Inbound::Refused(refusal));
        Counters::add(&self.score.counters.refused_line);
        self.router.disconnect(id, &why);
        self.after_event();
    }

    /// One more event in the batch; writes it out once the batch is full.
    fn after_event(&mut self) {
        self.taken += 1;
        if !self.router.batch_has_room(self.taken) {
            self.flush();
        }
    }

    /// Hands every recipient its share of the batch (see [`Clients`]).
    fn flush(&mut self) {
        self.router.flush(&mut self.clients);
        self.taken = 0;
    }
}

/// A `pollfd` entry: watch `fd` for `events`.
fn pollfd(fd: i32, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn raw_fd(socket: &impl std::os::fd::AsRawFd) -> i32 {
    socket.as_raw_fd()
}

/// `poll(2)`: sleeps until an entry of `fds` is ready or `wait` passes
/// (`None`: no timeout). Returns how many entries are ready.
fn poll(fds: &mut [libc::pollfd], wait: Option<Duration>) -> io::Result<usize> {
    // Milliseconds, rounded up (waking a little late is fine, waking early
    // would find the deadline not yet passed and poll again for 0 ms).
    let timeout_ms = match wait {
        None => -1,
        Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
    };
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed slice of
        // `pollfd`s for the whole call; the kernel writes only their
        // `revents` fields and reads no further than `fds.len()` entries.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
