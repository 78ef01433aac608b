// The GraphQL over HTTP working group's server audits (graphql-http's serverAudits) against the
// GraphQL endpoint given as the first argument. Prints one JSON line per audit and a summary on
// stderr; exits 1 if any MUST or SHOULD audit failed (MAY audits are reported, not required).
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs http://127.0.0.1:PORT/query');
  process.exit(2);
}
const results = await Promise.all(serverAudits({ url }).map((a) => a.fn()));
const counts = {};
let failed = 0;
for (const r of results) {
  const level = r.name.split(' ')[0]; // MUST, SHOULD or MAY
  counts[level] ??= { ok: 0, warn: 0, error: 0 };
  counts[level][r.status]++;
  const line = { id: r.id, status: r.status, name: r.name };
  if (r.status !== 'ok') {
    line.reason = r.reason;
    if (r.response) {
      line.responseStatus = r.response.status;
      line.contentType = r.response.headers.get('content-type');
      line.body = (await r.response.text()).slice(0, 300);
    }
  }
  // graphql-http marks a failed MUST "error", a failed SHOULD or MAY "warn".
  if (r.status !== 'ok' && level !== 'MAY') failed++;
  console.log(JSON.stringify(line));
}
console.error(JSON.stringify({ counts, failed }));
process.exit(failed ? 1 : 0);
