#!/usr/bin/env node
// The Node twin: tcphub's protocol v1 in plain Node.js, for comparison.
//
// Written in the style of the lesson's chat server: `net.createServer`, one
// 'data' handler per socket, `socket.write` for every line to every
// recipient. Unlike the lesson's code it speaks the contract exactly
// (docs/protocol.md): lines are framed across chunks, `--max-line` is
// enforced without buffering more than the limit, bad UTF-8 is refused,
// every command and error code is there, guest numbers skip names in use,
// `--max-clients` gives `ERR server-full`, and a client that stops reading
// is cut off after `--write-timeout-ms` with no byte taken, as soon as more
// than `--max-pending` bytes wait for it, or when more than `--soft-pending`
// have waited for `--soft-pending-ms`, instead of growing our memory.
//
// The other limits of `tcphub serve` are here too, with the same flags and
// defaults: `--line-timeout-ms` (a line left unfinished), `--idle-timeout-ms`
// (a client that sends nothing), `--max-per-ip`, `--max-subs`. What Node's
// model decides for us (docs/async-comparison.md says more):
// - there is no channel between reading and routing (a 'data' handler runs
//   to its end before the next one), so `--channel-capacity` and
//   `--channel-bytes` are accepted and mean nothing, and fairness is the
//   event loop's: every readable socket gets one read per turn;
// - `--blocking-writes` is accepted and means nothing: `socket.write` never
//   blocks;
// - out of file descriptors, libuv itself accepts the waiting connection
//   with a descriptor it keeps in reserve and closes it at once: the client
//   sees the connection end, not `ERR server-full`.
//
// Same flags and the same `listening on <addr>` line as `tcphub serve`:
//     node examples/node_hub.js --port 0
// No npm packages: only Node's own modules.
'use strict';

const net = require('node:net');
const { isUtf8 } = require('node:buffer');

// ---- flags ------------------------------------------------------------------

// The defaults of `tcphub serve` (src/cli.rs, src/hub/mod.rs); --help
// prints them, and tests/limits.rs checks they are still the hub's.
const DEFAULTS = {
  host: '127.0.0.1',
  port: 3000,
  maxClients: 1024,
  maxLine: 4096,
  writeTimeoutMs: 2000,
  channelCapacity: 16384,
  channelBytes: 16777216,
  maxPending: 33554432,
  softPending: 8388608,
  softPendingMs: 30000,
  maxSubs: 4096,
  lineTimeoutMs: 30000,
  idleTimeoutMs: 0,
  maxPerIp: 0,
};

const USAGE = `usage: node examples/node_hub.js [--host ${DEFAULTS.host}] [--port ${DEFAULTS.port}]
    [--max-clients ${DEFAULTS.maxClients}] [--max-line ${DEFAULTS.maxLine}] [--write-timeout-ms ${DEFAULTS.writeTimeoutMs}]
    [--channel-capacity ${DEFAULTS.channelCapacity}] [--channel-bytes ${DEFAULTS.channelBytes}] [--max-pending ${DEFAULTS.maxPending}]
    [--soft-pending ${DEFAULTS.softPending}] [--soft-pending-ms ${DEFAULTS.softPendingMs}]
    [--blocking-writes] [--max-subs ${DEFAULTS.maxSubs}] [--line-timeout-ms ${DEFAULTS.lineTimeoutMs}]
    [--idle-timeout-ms ${DEFAULTS.idleTimeoutMs}] [--max-per-ip ${DEFAULTS.maxPerIp}]
(0 turns --line-timeout-ms, --idle-timeout-ms and --max-per-ip off; the channel
flags and --blocking-writes are accepted and mean nothing here)`;

function parseFlags(argv) {
  const flags = { ...DEFAULTS };
  // name -> [field, min, max] (the same ranges as `tcphub serve`)
  const numeric = {
    '--port': ['port', 0, 65535],
    '--max-clients': ['maxClients', 1, 1000000],
    '--max-line': ['maxLine', 1, 16 * 1024 * 1024],
    '--write-timeout-ms': ['writeTimeoutMs', 1, 3600000],
    '--channel-capacity': ['channelCapacity', 1, 1048576],
    '--channel-bytes': ['channelBytes', 1, 2 ** 40],
    '--max-pending': ['maxPending', 1, 2 ** 40],
    '--soft-pending': ['softPending', 1, 2 ** 40],
    '--soft-pending-ms': ['softPendingMs', 0, 86400000],
    '--max-subs': ['maxSubs', 1, 1000000000],
    '--line-timeout-ms': ['lineTimeoutMs', 0, 86400000],
    '--idle-timeout-ms': ['idleTimeoutMs', 0, 86400000],
    '--max-per-ip': ['maxPerIp', 0, 1000000],
  };
  for (let i = 0; i < argv.length; i++) {
    let name = argv[i];
    let value;
    const eq = name.indexOf('=');
    if (name.startsWith('--') && eq > 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (name === '--help' || name === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    if (name === '--blocking-writes' && value === undefined) continue;
    if (name !== '--host' && !(name in numeric)) {
      fail(`unexpected argument '${argv[i]}'`);
    }
    if (value === undefined) {
      i += 1;
      if (i >= argv.length) fail(`a value is required for '${name}'`);
      value = argv[i];
    }
    if (name === '--host') {
      flags.host = value;
      continue;
    }
    const [field, min, max] = numeric[name];
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
      fail(`invalid value '${value}' for '${name}': must be ${min} to ${max}`);
    }
    flags[field] = Number(value);
  }
  return flags;
}

function fail(message) {
  process.stderr.write(`node_hub: ${message}\n${USAGE}\n`);
  process.exit(2);
}

const flags = parseFlags(process.argv.slice(2));

// ---- the protocol -------------------------------------------------------------

const HELP = [
  '<text>                  chat: everyone else gets MSG <you> <text>',
  '/nick <name>            rename (1-32 of A-Z a-z 0-9 _ -)',
  '/list                   every connected nick, sorted',
  '/dm <nick> <text>       direct message to one client',
  '/sub <topic>            subscribe to a topic (or * for all)',
  '/unsub <topic>          stop receiving a topic',
  '/pub <topic> <payload>  publish an event to the topic\'s subscribers',
  '/ping                   PONG',
  '/quit                   BYE, then the hub closes the connection',
  '/help                   this text',
];
const NICK_RE = /^[A-Za-z0-9_-]{1,32}$/;
const TOPIC_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const NEWLINE = 0x0a;
const CR = 0x0d;

// A refused line: `ERR <code> <text>` goes back to its sender.
class Refusal {
  constructor(code, text) {
    this.code = code;
    this.text = text;
  }
}

function checkNick(name) {
  if (!NICK_RE.test(name)) throw new Refusal('bad-nick', 'a nick is 1 to 32 of A-Z a-z 0-9 _ -');
}

function checkTopic(topic) {
  if (!TOPIC_RE.test(topic)) {
    throw new Refusal('bad-topic', 'a topic is 1 to 64 of A-Z a-z 0-9 _ - . (or * to /sub to all)');
  }
}

// One client line (valid UTF-8, not empty) -> a command object, or throws a
// Refusal. The first space separates the command word from its argument;
// inside the argument the first space separates a name from free text.
function parseCommand(line) {
  if (line[0] !== '/') return { kind: 'chat', text: line };
  const rest = line.slice(1);
  const space = rest.indexOf(' ');
  const word = space < 0 ? rest : rest.slice(0, space);
  const arg = space < 0 ? '' : rest.slice(space + 1);
  const noArgs = (kind) => {
    if (arg !== '') throw new Refusal('usage', `/${word} takes no arguments`);
    return { kind };
  };
  switch (word) {
    case 'nick':
      if (arg === '') throw new Refusal('usage', '/nick <name>');
      checkNick(arg);
      return { kind: 'nick', name: arg };
    case 'list':
      return noArgs('list');
    case 'dm': {
      const at = arg.indexOf(' ');
      if (at <= 0 || at === arg.length - 1) throw new Refusal('usage', '/dm <nick> <text>');
      const to = arg.slice(0, at);
      checkNick(to);
      return { kind: 'dm', to, text: arg.slice(at + 1) };
    }
    case 'sub':
    case 'unsub':
      if (arg === '') throw new Refusal('usage', `/${word} <topic>`);
      if (arg !== '*') checkTopic(arg);
      return { kind: word, topic: arg };
    case 'pub': {
      const at = arg.indexOf(' ');
      const topic = at < 0 ? arg : arg.slice(0, at);
      const payload = at < 0 ? '' : arg.slice(at + 1);
      if (topic === '') throw new Refusal('usage', '/pub <topic> <payload>');
      if (topic === '*') throw new Refusal('bad-topic', '* is for /sub only; publish on a named topic');
      checkTopic(topic);
      return { kind: 'pub', topic, payload };
    }
    case 'ping':
      return noArgs('ping');
    case 'quit':
      return noArgs('quit');
    case 'help':
      return noArgs('help');
    default:
      throw new Refusal('unknown-command', `/${word} is not a command; try /help`);
  }
}

// ---- the hub's state ------------------------------------------------------------

const clients = new Set(); // connected clients
const nicks = new Map(); // nick -> client
const topics = new Map(); // topic (or '*') -> Set of clients
const perIp = new Map(); // remote address -> connections open (--max-per-ip)
let nextGuest = 1;
let admitted = 0;

// Queues one line (a Buffer, formatted once for all its recipients) for one
// client. Node keeps what the kernel does not take in user memory
// (`writableLength`), and the hub's three bounds apply to it:
// - more than --max-pending there and the client is cut off at once;
// - more than --soft-pending for --soft-pending-ms without a break: cut off
//   (a timer started when it goes over; a send that finds it back under
//   stops the clock, so a burst passes and a reader that stays behind
//   does not);
// - when the socket's buffer is over its mark, a timer starts; if the
//   kernel has taken no byte when it fires, the client stopped reading and
//   is cut off; if it took some, the timer starts again.
function send(client, line) {
  if (!client.open) return;
  const below = client.socket.write(line);
  const pending = client.socket.writableLength;
  if (pending > flags.maxPending) {
    cutOff(client, `not reading fast enough: more than ${flags.maxPending} bytes pending (--max-pending)`);
    return;
  }
  overSoft(client, pending);
  if (!below && client.stall === null) {
    watchStall(client, flushed(client));
  }
}

// Bytes the kernel has taken from this socket so far.
function flushed(client) {
  return client.socket.bytesWritten - client.socket.writableLength;
}

function watchStall(client, before) {
  client.stall = setTimeout(() => {
    client.stall = null;
    if (!client.open || client.socket.writableLength === 0) return;
    const now = flushed(client);
    if (now === before) {
      cutOff(client, `not reading: ${client.socket.writableLength} bytes pending, none taken for ${flags.writeTimeoutMs} ms`);
    } else {
      watchStall(client, now);
    }
  }, flags.writeTimeoutMs);
}

// The soft limit's clock, started and stopped by what is pending now.
function overSoft(client, pending) {
  if (pending <= flags.softPending) {
    if (client.softTimer !== null) {
      clearTimeout(client.softTimer);
      client.softTimer = null;
    }
    return;
  }
  if (client.softTimer !== null) return;
  const ms = flags.softPendingMs;
  client.softTimer = setTimeout(() => {
    client.softTimer = null;
    if (client.open && client.socket.writableLength > flags.softPending) {
      cutOff(client, `not reading fast enough: more than ${flags.softPending} bytes pending for ${ms} ms (--soft-pending)`);
    }
  }, ms);
}

// A client that cannot take its lines: the others see LEAVE, and what is
// queued for it is thrown away with the socket.
function cutOff(client, why) {
  leave(client, why);
  client.socket.destroy();
}

// `ERR <code> <text>` for a line or idle timeout, then the end of it.
function kick(client, code, text) {
  reply(client, `ERR ${code} ${text}`);
  leave(client, `${code}: ${text}`);
}

function reply(client, text) {
  send(client, Buffer.from(text + '\n'));
}

function toAllBut(except, text) {
  const line = Buffer.from(text + '\n');
  for (const other of clients) {
    if (other !== except) send(other, line);
  }
}

// A client is gone (quit, end of stream, error, cut off): forget it, free
// its slot, and tell the others. Lines already queued for it still go out.
function leave(client, why) {
  if (!client.open) return;
  client.open = false;
  clients.delete(client);
  nicks.delete(client.nick);
  for (const topic of client.subs) unsubscribe(client, topic);
  admitted -= 1;
  release(client.socket.remoteAddress);
  for (const timer of ['stall', 'softTimer', 'lineTimer', 'idleTimer']) {
    if (client[timer] !== null) {
      clearTimeout(client[timer]);
      client[timer] = null;
    }
  }
  toAllBut(client, `LEAVE ${client.nick}`);
  client.socket.end();
  void why;
}

function unsubscribe(client, topic) {
  const subscribers = topics.get(topic);
  if (subscribers === undefined) return;
  subscribers.delete(client);
  if (subscribers.size === 0) topics.delete(topic);
}

function handle(client, cmd) {
  switch (cmd.kind) {
    case 'chat':
      toAllBut(client, `MSG ${client.nick} ${cmd.text}`);
      break;
    case 'nick':
      if (cmd.name === client.nick) {
        reply(client, `OK nick ${cmd.name}`);
      } else if (nicks.has(cmd.name)) {
        reply(client, `ERR nick-taken ${cmd.name} is already in use`);
      } else {
        const old = client.nick;
        nicks.delete(old);
        nicks.set(cmd.name, client);
        client.nick = cmd.name;
        reply(client, `OK nick ${cmd.name}`);
        toAllBut(client, `NICK ${old} ${cmd.name}`);
      }
      break;
    case 'list': {
      // Nicks are ASCII, so UTF-16 order is byte order.
      const all = [...nicks.keys()].sort();
      reply(client, `LIST ${all.join(' ')}`);
      break;
    }
    case 'dm': {
      const target = nicks.get(cmd.to);
      if (target === undefined) {
        reply(client, `ERR no-such-nick nobody is called ${cmd.to}`);
      } else {
        reply(target, `DM ${client.nick} ${cmd.text}`);
        reply(client, `OK dm ${cmd.to}`);
      }
      break;
    }
    case 'sub':
      if (!client.subs.has(cmd.topic) && client.subs.size >= flags.maxSubs) {
        reply(client, `ERR too-many-subs at most ${flags.maxSubs} topics per client`);
        break;
      }
      if (!client.subs.has(cmd.topic)) {
        client.subs.add(cmd.topic);
        if (!topics.has(cmd.topic)) topics.set(cmd.topic, new Set());
        topics.get(cmd.topic).add(client);
      }
      reply(client, `OK sub ${cmd.topic}`);
      break;
    case 'unsub':
      if (client.subs.delete(cmd.topic)) unsubscribe(client, cmd.topic);
      reply(client, `OK unsub ${cmd.topic}`);
      break;
    case 'pub': {
      const line = Buffer.from(`EVENT ${cmd.topic} ${client.nick} ${cmd.payload}\n`);
      for (const sub of topics.get(cmd.topic) || []) {
        if (sub !== client) send(sub, line);
      }
      for (const sub of topics.get('*') || []) {
        if (sub !== client && !sub.subs.has(cmd.topic)) send(sub, line);
      }
      break;
    }
    case 'ping':
      reply(client, 'PONG');
      break;
    case 'quit':
      reply(client, 'BYE');
      leave(client, 'quit');
      break;
    case 'help':
      for (const text of HELP) reply(client, `HELP ${text}`);
      break;
  }
}

// One framed line (Buffer, without its line ending) from a client.
function onLine(client, bytes) {
  if (bytes.length === 0) return;
  if (!isUtf8(bytes)) {
    reply(client, 'ERR bad-utf8 line is not valid UTF-8 and was dropped');
    return;
  }
  let cmd;
  try {
    cmd = parseCommand(bytes.toString('utf8'));
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    reply(client, `ERR ${e.code} ${e.text}`);
    return;
  }
  handle(client, cmd);
}

function tooLong(client) {
  reply(
    client,
    `ERR line-too-long lines are at most ${flags.maxLine} bytes; the rest of this one is dropped`,
  );
}

// Frames a chunk into lines. TCP may split or join lines anyhow, so the
// unfinished tail waits in `client.partial` (never more than max-line + 1
// bytes); a line past the limit is refused once and skipped up to its `\n`.
function onData(client, chunk) {
  let start = 0;
  while (start < chunk.length && client.open) {
    const nl = chunk.indexOf(NEWLINE, start);
    const end = nl < 0 ? chunk.length : nl;
    if (client.discarding) {
      if (nl >= 0) client.discarding = false;
    } else if (nl >= 0) {
      let line = chunk.subarray(start, end);
      if (client.partialLength > 0) {
        client.partial.push(line);
        line = Buffer.concat(client.partial, client.partialLength + line.length);
        client.partial = [];
        client.partialLength = 0;
      }
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      if (line.length > flags.maxLine) tooLong(client);
      else onLine(client, line);
    } else {
      // No newline yet: keep the tail unless it can no longer fit. One byte
      // over may still end well: it may be the `\r` of `\r\n`.
      const piece = chunk.subarray(start, end);
      const held = client.partialLength + piece.length;
      const couldFit =
        held <= flags.maxLine || (held === flags.maxLine + 1 && piece[piece.length - 1] === CR);
      if (couldFit) {
        // Copy: Node may reuse the chunk's memory.
        client.partial.push(Buffer.from(piece));
        client.partialLength = held;
      } else {
        client.partial = [];
        client.partialLength = 0;
        client.discarding = true;
        tooLong(client);
      }
    }
    start = end + 1;
  }
  timeLine(client);
}

// --line-timeout-ms: a line in progress (bytes held, or the rest of a
// too-long one being skipped) must end within the limit, counted from the
// chunk that brought its first bytes.
function timeLine(client) {
  const inLine = client.partialLength > 0 || client.discarding;
  if (!inLine || !client.open) {
    if (client.lineTimer !== null) clearTimeout(client.lineTimer);
    client.lineTimer = null;
  } else if (client.lineTimer === null && flags.lineTimeoutMs > 0) {
    const ms = flags.lineTimeoutMs;
    client.lineTimer = setTimeout(() => {
      client.lineTimer = null;
      kick(client, 'line-timeout', `a line must arrive within ${ms} ms`);
    }, ms);
  }
}

// --max-per-ip: one more connection from `ip`, if it has room.
function admitIp(ip) {
  if (flags.maxPerIp === 0) return true;
  const open = perIp.get(ip) || 0;
  if (open >= flags.maxPerIp) return false;
  perIp.set(ip, open + 1);
  return true;
}

function release(ip) {
  if (flags.maxPerIp === 0) return;
  const open = (perIp.get(ip) || 1) - 1;
  if (open === 0) perIp.delete(ip);
  else perIp.set(ip, open);
}

// ---- the server -------------------------------------------------------------------

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('error', () => {}); // reported through 'close' below
  if (!admitIp(socket.remoteAddress)) {
    socket.end('ERR server-full too many connections from your address (--max-per-ip)\n');
    setTimeout(() => socket.destroy(), flags.writeTimeoutMs).unref();
    return;
  }
  if (admitted >= flags.maxClients) {
    release(socket.remoteAddress);
    socket.end('ERR server-full the hub is at its --max-clients limit; try again later\n');
    setTimeout(() => socket.destroy(), flags.writeTimeoutMs).unref();
    return;
  }
  admitted += 1;
  socket.setNoDelay(true);
  let nick = `guest-${nextGuest++}`;
  while (nicks.has(nick)) nick = `guest-${nextGuest++}`;
  const client = {
    nick,
    socket,
    subs: new Set(),
    open: true,
    stall: null,
    softTimer: null,
    lineTimer: null,
    idleTimer: null,
    partial: [],
    partialLength: 0,
    discarding: false,
  };
  toAllBut(null, `JOIN ${nick}`);
  clients.add(client);
  nicks.set(nick, client);
  reply(client, `WELCOME ${nick}`);

  // --idle-timeout-ms: not `socket.setTimeout`, which counts our writes as
  // activity too; a client that only receives is idle all the same.
  if (flags.idleTimeoutMs > 0) {
    const ms = flags.idleTimeoutMs;
    client.idleTimer = setTimeout(() => {
      client.idleTimer = null;
      kick(client, 'idle-timeout', `nothing received for ${ms} ms`);
    }, ms);
  }
  socket.on('data', (chunk) => {
    if (client.idleTimer !== null) client.idleTimer.refresh();
    onData(client, chunk);
  });
  // Half-close: everything it sent is answered by now; close our side too.
  socket.on('end', () => leave(client, 'end of stream'));
  socket.on('close', () => leave(client, 'closed'));
  socket.on('drain', () => {
    if (client.stall !== null) {
      clearTimeout(client.stall);
      client.stall = null;
    }
  });
});

server.on('error', (e) => {
  process.stderr.write(`node_hub: cannot listen on ${flags.host}:${flags.port}: ${e.message}\n`);
  process.exit(2);
});

server.listen({ host: flags.host, port: flags.port, backlog: 1024 }, () => {
  const { address, family, port } = server.address();
  const host = family === 'IPv6' ? `[${address}]` : address;
  process.stdout.write(`listening on ${host}:${port}\n`);
});
