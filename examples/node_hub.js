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
// is cut off after `--write-timeout-ms` instead of growing our memory.
//
// Same flags and the same `listening on <addr>` line as `tcphub serve`:
//     node examples/node_hub.js --port 0
// No npm packages: only Node's own modules.
'use strict';

const net = require('node:net');
const { isUtf8 } = require('node:buffer');

// ---- flags ------------------------------------------------------------------

const USAGE = `usage: node examples/node_hub.js [--host HOST] [--port PORT] [--max-clients N]
                                    [--max-line BYTES] [--write-timeout-ms MS]`;

function parseFlags(argv) {
  const flags = {
    host: '127.0.0.1',
    port: 3000,
    maxClients: 1024,
    maxLine: 4096,
    writeTimeoutMs: 2000,
  };
  // name -> [field, min, max] (the same ranges as `tcphub serve`)
  const numeric = {
    '--port': ['port', 0, 65535],
    '--max-clients': ['maxClients', 1, 1000000],
    '--max-line': ['maxLine', 1, 16 * 1024 * 1024],
    '--write-timeout-ms': ['writeTimeoutMs', 1, 3600000],
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
let nextGuest = 1;
let admitted = 0;

// Queues one line (a Buffer, formatted once for all its recipients) for one
// client. When the socket's buffer is over its mark, a timer starts; if the
// socket has not drained when it fires, the client stopped reading and is
// cut off.
function send(client, line) {
  if (!client.open) return;
  if (!client.socket.write(line) && client.stall === null) {
    client.stall = setTimeout(() => {
      client.stall = null;
      if (client.socket.writableLength > 0) {
        leave(client, `not reading: write blocked past ${flags.writeTimeoutMs} ms`);
        client.socket.destroy();
      }
    }, flags.writeTimeoutMs);
  }
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
  if (client.stall !== null) {
    clearTimeout(client.stall);
    client.stall = null;
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
}

// ---- the server -------------------------------------------------------------------

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('error', () => {}); // reported through 'close' below
  if (admitted >= flags.maxClients) {
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
    partial: [],
    partialLength: 0,
    discarding: false,
  };
  toAllBut(null, `JOIN ${nick}`);
  clients.add(client);
  nicks.set(nick, client);
  reply(client, `WELCOME ${nick}`);

  socket.on('data', (chunk) => onData(client, chunk));
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
