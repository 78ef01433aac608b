// One client process of make bench-subs (driven by go run ./cmd/bench -subs): COUNT subscribers
// to userCreated, each a graphql-ws client on a websocket of its own (graphql-transport-ws, npm
// ws), the last SSE of them over server-sent events (text/event-stream), each from a
// loopback address of its own so that the server sees distinct clients (and the kernel's
// ephemeral ports do not run out past ~28,000 sockets to one address).
//
// It prints JSON lines on stdout: {"type":"ready",...} once every subscriber is connected and its
// subscribe sent; on "stop" (a line on stdin) it closes every subscriber and prints
// {"type":"report",...}: how many of events 0..EVENTS-1 each subscriber got, their delivery
// latencies (receipt minus the send time the username carries) as a histogram in milliseconds,
// close codes and errors the server sent.
//
// The username of a created user is e<seq>_<send time in µs since the epoch>.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import readline from 'node:readline';
import http from 'node:http';

const cfg = JSON.parse(process.argv[2]);
const { url, count, sse, first, maxEvents } = cfg; // first: index of this process's first subscriber (its address)
const query = 'subscription BenchUserCreated { userCreated { id username createdAt } }';
const histMax = 600_000; // ms
const hist = new Uint32Array(histMax + 1);
let deliveries = 0, duplicates = 0, unknown = 0, last = 0;
const closes = {}; // code -> sockets the server closed (before stop)
const errors = {}; // extensions.code (or message) -> subscriptions ended with an error
const ended = { complete: 0 }; // subscriptions the server completed before stop
let stopping = false;
let connected = 0, failed = 0;
const failures = {};

function addressOf(i) {
  // 127.1.0.0/16 upwards: i+2 keeps .0 and .1 out of the last byte's low end.
  const n = first + i + 2;
  return `127.${1 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

function record(got, username) {
  const m = /^e(\d+)_(\d+)$/.exec(username);
  if (!m) { unknown++; return; }
  const seq = Number(m[1]);
  if (seq >= maxEvents) { unknown++; return; }
  if (got[seq]) { duplicates++; return; }
  got[seq] = 1;
  deliveries++;
  last = performance.timeOrigin + performance.now();
  const ms = last - Number(m[2]) / 1000;
  hist[Math.min(histMax, Math.max(0, Math.floor(ms)))]++;
}

function count1(map, key) { map[key] = (map[key] || 0) + 1; }

const subs = [];

function wsSubscriber(i) {
  const got = new Uint8Array(maxEvents);
  const localAddress = addressOf(i);
  class LocalWebSocket extends WebSocket {
    constructor(address, protocols) { super(address, protocols, { localAddress }); }
  }
  let connectedOnce = false;
  return new Promise((resolve) => {
    const client = createClient({
      url,
      webSocketImpl: LocalWebSocket,
      retryAttempts: 0,
      lazy: false,
      on: {
        connected: () => { connectedOnce = true; },
        closed: (ev) => {
          if (!stopping && connectedOnce) count1(closes, ev && ev.code !== undefined ? ev.code : 'unknown');
          if (!connectedOnce) { failed++; count1(failures, `closed ${ev && ev.code}`); resolve(); }
        },
        error: (err) => { if (!connectedOnce) { count1(failures, String(err && err.message || err)); } },
      },
    });
    const sub = { got, client, kind: 'ws' };
    subs.push(sub);
    client.subscribe({ query }, {
      next: (r) => {
        if (r.errors) { count1(errors, r.errors[0]?.extensions?.code || r.errors[0]?.message); return; }
        record(got, r.data.userCreated.username);
      },
      error: (err) => {
        if (stopping) return;
        if (Array.isArray(err)) count1(errors, err[0]?.extensions?.code || err[0]?.message);
        else if (err && err.code !== undefined) { /* a close: counted by closed */ }
        else count1(errors, String(err && err.message || err));
      },
      complete: () => { if (!stopping) ended.complete++; },
    });
    // connected fires on connection_ack; the subscribe goes out right after it.
    client.on('connected', () => { connected++; resolve(); });
  });
}

function sseSubscriber(i) {
  const got = new Uint8Array(maxEvents);
  const sub = { got, req: null, kind: 'sse' };
  subs.push(sub);
  const body = JSON.stringify({ query });
  return new Promise((resolve) => {
    const req = http.request(url.replace(/^ws/, 'http'), {
      method: 'POST',
      localAddress: addressOf(i),
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      if (res.statusCode !== 200) { failed++; count1(failures, `HTTP ${res.statusCode}`); res.resume(); resolve(); return; }
      connected++;
      resolve();
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk) => {
        buf += chunk;
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          let event = 'message', data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (event === 'complete') { if (!stopping) ended.complete++; continue; }
          if (!data) continue;
          const r = JSON.parse(data);
          if (r.errors) { count1(errors, r.errors[0]?.extensions?.code || r.errors[0]?.message); continue; }
          if (r.data?.userCreated) record(got, r.data.userCreated.username);
        }
      });
      res.on('end', () => { if (!stopping) count1(closes, 'sse-end'); });
      res.on('error', () => { if (!stopping) count1(closes, 'sse-error'); });
    });
    req.on('error', (err) => { if (!stopping) { failed++; count1(failures, String(err.message)); resolve(); } });
    sub.req = req;
    req.end(body);
  });
}

const started = Date.now();
// Connect in waves so that the server's accept queue and our CPU are not swamped at once.
const wave = 200;
for (let i = 0; i < count; i += wave) {
  const batch = [];
  for (let j = i; j < Math.min(count, i + wave); j++) {
    batch.push(j >= count - sse ? sseSubscriber(j) : wsSubscriber(j));
  }
  await Promise.all(batch);
}
process.stdout.write(JSON.stringify({ type: 'ready', connected, failed, failures, ms: Date.now() - started }) + '\n');

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  if (line.trim() === 'progress') {
    process.stdout.write(JSON.stringify({ type: 'progress', deliveries, last }) + '\n');
    return;
  }
  if (line.trim() !== 'stop') return;
  stopping = true;
  const gotPerSub = subs.map((s) => s.got);
  for (const s of subs) {
    if (s.client) s.client.dispose(); else s.req.destroy();
  }
  rl.close();
  const report = { type: 'report', subscribers: subs.length, ws: subs.filter((s) => s.kind === 'ws').length,
    deliveries, duplicates, unknown, closes, errors, ended, hist: {} };
  for (let ms = 0; ms <= histMax; ms++) if (hist[ms]) report.hist[ms] = hist[ms];
  // received[k]: subscribers that got event k
  const received = new Uint32Array(maxEvents);
  for (const got of gotPerSub) for (let k = 0; k < maxEvents; k++) received[k] += got[k];
  report.received = Array.from(received);
  process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(0));
});
