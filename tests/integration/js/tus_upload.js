// Uploads a file to a tus endpoint with the unmodified tus-js-client (node build).
// usage: node tus_upload.js ENDPOINT FILE MODE   (MODE: single | parallel | resume)
// Prints one JSON line: {"url": final upload URL, "events": [...]} or {"error": "..."}.
'use strict';
const fs = require('fs');
const path = require('path');
const tus = require('tus-js-client');

const [endpoint, file, mode] = process.argv.slice(2);
const data = fs.readFileSync(file);
const events = [];

function options(extra) {
  return Object.assign({
    endpoint,
    metadata: { filename: path.basename(file), filetype: 'video/mp4', title: 'tus-js-client ' + mode },
    retryDelays: [0, 200, 500],
    storeFingerprintForResuming: false,
    onError: (err) => { console.log(JSON.stringify({ error: String(err), events })); process.exit(1); },
  }, extra);
}

function done(upload) {
  console.log(JSON.stringify({ url: upload.url, events }));
}

if (mode === 'single') {
  // default chunkSize: the whole body in one PATCH
  const up = new tus.Upload(data, options({ onSuccess: () => done(up) }));
  up.start();
} else if (mode === 'parallel') {
  const up = new tus.Upload(data, options({ parallelUploads: 3, onSuccess: () => done(up) }));
  up.start();
} else if (mode === 'resume') {
  let first;
  first = new tus.Upload(data, options({
    chunkSize: 256 * 1024,
    onChunkComplete: (chunk, sent, total) => {
      if (events.length === 0) {
        events.push({ aborted_at: sent, total });
        first.abort().then(() => {
          // a new client object picks the upload up from its URL: HEAD for the offset, then PATCH the rest
          const second = new tus.Upload(data, options({
            uploadUrl: first.url,
            onProgress: (s) => { if (events.length === 1) events.push({ resumed_from: s }); },
            onSuccess: () => done(second),
          }));
          second.start();
        });
      }
    },
    onSuccess: () => done(first),
  }));
  first.start();
} else {
  console.log(JSON.stringify({ error: 'unknown mode ' + mode }));
  process.exit(2);
}
