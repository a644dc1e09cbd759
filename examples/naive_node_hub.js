#!/usr/bin/env node
// A naive chat server in the style of the Node lesson, kept on purpose as
// something for `tcphub check` to grade (docs/check.md). It treats one
// 'data' event as one message: no framing, no limits, no validation, and
// it trims and relays each chunk as it came. Do not copy it; run
//     node examples/naive_node_hub.js --port 0
//     tcphub check 127.0.0.1:<port>
// and read what the grader says. Flags other than --host/--port are ignored.
'use strict';

const net = require('node:net');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const clients = new Set();
let next = 1;

function broadcast(from, line) {
  for (const c of clients) if (c !== from) c.write(line);
}

const server = net.createServer((socket) => {
  socket.nick = `guest-${next++}`;
  socket.write(`WELCOME ${socket.nick}\n`);
  broadcast(socket, `JOIN ${socket.nick}\n`);
  clients.add(socket);

  socket.on('data', (data) => {
    const text = data.toString().trim(); // one 'data' event = one message
    if (text.startsWith('/nick ')) {
      const old = socket.nick;
      socket.nick = text.slice(6);
      socket.write(`OK nick ${socket.nick}\n`);
      broadcast(socket, `NICK ${old} ${socket.nick}\n`);
    } else if (text === '/list') {
      socket.write(`LIST ${[...clients].map((c) => c.nick).sort().join(' ')}\n`);
    } else if (text === '/ping') {
      socket.write('PONG\n');
    } else if (text === '/quit') {
      socket.end('BYE\n');
    } else {
      broadcast(socket, `MSG ${socket.nick} ${text}\n`);
    }
  });
  socket.on('close', () => {
    clients.delete(socket);
    broadcast(socket, `LEAVE ${socket.nick}\n`);
  });
  socket.on('error', () => {});
});

server.listen(Number(arg('--port', 3000)), arg('--host', '127.0.0.1'), () => {
  const { address, port } = server.address();
  console.log(`listening on ${address}:${port}`);
});
