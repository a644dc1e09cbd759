"""A protocol v1 server that keeps the contract (docs/protocol.md) and makes
the other choice on every open point tcphub check knows: guest numbers
reused (lowest free), /dm with empty text delivered, DM text after any run
of spaces, /dm to yourself refused, /quit with arguments quits, commands
case-insensitive and //x chat, arguments split on spaces, /pub * to
everyone, a rename to your own name broadcast, one EVENT per subscription,
no space before an empty payload, ERR line-too-long only at the newline.
(Not the other choice of slot-free-at-leave: a slot is free at LEAVE.)
Prints its port; runs until killed.
Usage: python3 other_choices.py [--max-clients N] [--break-a-requirement]
"""
import asyncio, re, sys

MAX_LINE = 4096
MAX_CLIENTS = int(sys.argv[sys.argv.index("--max-clients") + 1]) if "--max-clients" in sys.argv else 1024
BROKEN = "--break-a-requirement" in sys.argv  # then chat is trimmed: not byte for byte
NICK = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
TOPIC = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
clients = {}  # nick -> Client

class Client:
    def __init__(self, w, nick): self.w, self.nick, self.subs = w, nick, set()
    def send(self, line): self.w.write(line.encode() + b"\n")

def others(me): return [c for c in clients.values() if c is not me]

def command(me, line):
    """Handles one line; returns False to quit."""
    if not line.startswith("/") or line.startswith("//"):
        text = line[1:] if line.startswith("//") else line
        for c in others(me): c.send(f"MSG {me.nick} {text.strip() if BROKEN else text}")
        return True
    word, *args = line[1:].split()  or [""]
    word = word.lower()
    if word in ("list", "ping", "help", "quit"):
        if word == "quit": me.send("BYE"); return False
        if word == "ping": me.send("PONG")
        if word == "list": me.send("LIST " + " ".join(sorted(clients, key=str.encode)))
        if word == "help": me.send("HELP /nick /list /dm /sub /unsub /pub /ping /quit /help")
    elif word == "nick":
        if len(args) != 1: return me.send("ERR usage /nick <name>") or True
        new = args[0]
        if not NICK.match(new): me.send("ERR bad-nick no"); return True
        if new in clients and clients[new] is not me: me.send("ERR nick-taken taken"); return True
        old = me.nick; del clients[old]; me.nick = new; clients[new] = me
        me.send(f"OK nick {new}")
        for c in others(me): c.send(f"NICK {old} {new}")
    elif word == "dm":
        if not args: me.send("ERR usage /dm <nick> <text>"); return True
        parts = line.split(None, 2)
        text = parts[2] if len(parts) > 2 else ""
        to = args[0]
        if not NICK.match(to): me.send("ERR bad-nick no"); return True
        if to == me.nick: me.send("ERR usage not to yourself"); return True
        if to not in clients: me.send("ERR no-such-nick nobody"); return True
        clients[to].send(f"DM {me.nick} {text}"); me.send(f"OK dm {to}")
    elif word in ("sub", "unsub"):
        if len(args) != 1: me.send(f"ERR usage /{word} <topic>"); return True
        t = args[0]
        if not (TOPIC.match(t) or t == "*"): me.send("ERR bad-topic no"); return True
        (me.subs.add if word == "sub" else me.subs.discard)(t)
        me.send(f"OK {word} {t}")
    elif word == "pub":
        if not args: me.send("ERR usage /pub <topic> <payload>"); return True
        t, payload = args[0], line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
        if not (TOPIC.match(t) or t == "*"): me.send("ERR bad-topic no"); return True
        sep = " " if payload else ""
        for c in others(me):
            for _ in range(len(c.subs & {t, "*"}) if t != "*" else 1):
                c.send(f"EVENT {t} {me.nick}{sep}{payload}")
    else:
        me.send("ERR unknown-command no")
    return True

async def serve(r, w):
    if len(clients) >= MAX_CLIENTS:
        w.write(b"ERR server-full full\n"); await w.drain(); w.close(); return
    n = 1
    while f"guest-{n}" in clients: n += 1
    me = Client(w, f"guest-{n}"); clients[me.nick] = me
    me.send(f"WELCOME {me.nick}")
    for c in others(me): c.send(f"JOIN {me.nick}")
    buf, too_long = b"", False
    try:
        while True:
            data = await r.read(65536)
            if not data: break
            buf += data
            quit = False
            while b"\n" in buf and not quit:
                raw, buf = buf.split(b"\n", 1)
                raw = raw[:-1] if raw.endswith(b"\r") else raw
                if too_long or len(raw) > MAX_LINE: too_long = False; me.send("ERR line-too-long long"); continue
                if not raw: continue
                try: line = raw.decode("utf-8")
                except UnicodeDecodeError: me.send("ERR bad-utf8 no"); continue
                quit = not command(me, line)
            if quit: break
            if len(buf) > MAX_LINE + 1: buf, too_long = b"", True
            for c in list(clients.values()):
                try: await c.w.drain()
                except Exception: pass
    except Exception:
        pass
    del clients[me.nick]
    for c in clients.values(): c.send(f"LEAVE {me.nick}")
    try:
        await w.drain(); w.close()
    except Exception:
        pass

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
