// mock_hub.mjs — a local stand-in for the Hugging Face Hub, for tests/store only.
//
//   node tests/store/mock_hub.mjs --root DIR --port-file FILE [--log FILE] [--max-seconds N]
//
// Serves every directory DIR/<org>/<name>/ as the repository org/name on
// 127.0.0.1 (a free port, written to --port-file), with the real API's shapes:
//   GET  /api/models/{org}/{name}/revision/{rev}[?blobs=true]
//        {"_id","id","modelId","sha","private","gated","disabled","lastModified",
//         "siblings":[{"rfilename"[,"blobId","size","lfs":{"sha256","size","pointerSize"}]}]}
//   GET|HEAD /{org}/{name}/resolve/{rev}/{file}
//        *.safetensors are LFS files: 302 to /cdn/{org}/{name}/{sha256} with X-Linked-Etag,
//        X-Linked-Size, X-Repo-Commit, ETag; other files 200 with ETag = git blob id
//   GET|HEAD /cdn/{org}/{name}/{sha256}   Range (bytes=N-[M]) -> 206 + Content-Range, 416 past the end
//   errors: unknown repo 401 X-Error-Code: RepoNotFound (as the hub answers anonymous
//   clients), unknown revision 404 RevisionNotFound, unknown file 404 EntryNotFound.
// Revisions: "main", "v1" (tag) and the commit (sha1 of the repo name).
// Fault injection by organisation name:
//   cut/*      the first CDN GET of each file sends half the bytes, then resets the connection
//   corrupt/*  the CDN flips one byte of every file
//   slow/*     the first CDN GET of each file sends headers and 16 bytes, then nothing (a stall)
//   hang/*     every CDN GET of a weights file sends headers and then nothing
//   flaky/*    the model-info API answers 503 twice before succeeding
//   norange/*  like cut/*, and the CDN ignores Range (answers 200 with the whole file)
//   noblobs/*  the API ignores ?blobs=true (siblings carry rfilename only), as some mirrors do
//   huge/*     the API claims every LFS file has 1 PiB (for the free-space check)
//   gated/*    "gated": "manual"; files need "Authorization: Bearer hf_good": 401 GatedRepo without a
//              token, 403 with another (the model info is public, as on the hub)
// Every request is appended to --log as "METHOD PATH range=<Range or -> -> STATUS".
// The process exits on SIGTERM, or after --max-seconds (default 120) in any case.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const root = args.root;
const logFile = args.log;
setTimeout(() => process.exit(0), 1000 * Number(args['max-seconds'] || 120)).unref();
process.on('SIGTERM', () => process.exit(0));

const repos = new Map(); // "org/name" -> {commit, files: Map(rfilename -> {path, size, lfs, sha256, blobId})}

function gitBlobId(buf) {
  return crypto.createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
}

function walk(dir, rel, out) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (fs.statSync(p).isDirectory()) walk(p, r, out);
    else out.push([r, p]);
  }
}

for (const org of fs.readdirSync(root)) {
  for (const name of fs.readdirSync(path.join(root, org))) {
    const id = `${org}/${name}`;
    const files = new Map();
    const list = [];
    walk(path.join(root, org, name), '', list);
    list.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [r, p] of list) {
      const buf = fs.readFileSync(p);
      const lfs = r.endsWith('.safetensors');
      const f = { path: p, size: buf.length, lfs, blobId: gitBlobId(buf) };
      if (lfs) {
        f.sha256 = crypto.createHash('sha256').update(buf).digest('hex');
        // the git blob of an LFS file is its pointer
        f.blobId = gitBlobId(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${f.sha256}\nsize ${buf.length}\n`));
      }
      files.set(r, f);
    }
    const commit = crypto.createHash('sha1').update(id).digest('hex');
    repos.set(id, { id, org, commit, files });
  }
}

const seen = new Map(); // fault bookkeeping: key -> count
function bump(key) {
  const n = (seen.get(key) || 0) + 1;
  seen.set(key, n);
  return n;
}

function log(req, status) {
  if (logFile) fs.appendFileSync(logFile, `${req.method} ${req.url} range=${req.headers.range || '-'} -> ${status}\n`);
}

function send(req, res, status, headers, body) {
  log(req, status);
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function errorOut(req, res, status, code, message) {
  send(req, res, status, { 'Content-Type': 'application/json', 'X-Error-Code': code, 'X-Error-Message': message },
    JSON.stringify({ error: message }));
}

function authorize(req, res, repo) {
  if (repo.org !== 'gated') return true;
  const auth = req.headers.authorization || '';
  if (auth === 'Bearer hf_good') return true;
  if (!auth) errorOut(req, res, 401, 'GatedRepo', `Access to model ${repo.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
  else errorOut(req, res, 403, 'GatedRepo', `Access to model ${repo.id} is restricted and you are not in the authorized list.`);
  return false;
}

function resolveRev(repo, rev) {
  return rev === 'main' || rev === 'v1' || rev === repo.commit;
}

function modelInfo(req, res, id, rev, blobsWanted) {
  const repo = repos.get(id);
  if (!repo) return errorOut(req, res, 401, 'RepoNotFound', 'Repository not found');
  // as on the hub, a gated repository's metadata is public; its files are not
  if (repo.org === 'flaky' && bump(`api:${id}`) <= 2) return errorOut(req, res, 503, 'ServiceUnavailable', 'try later');
  if (!resolveRev(repo, rev)) return errorOut(req, res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
  const siblings = [];
  for (const [r, f] of repo.files) {
    const s = { rfilename: r };
    if (blobsWanted && repo.org !== 'noblobs') {
      const size = repo.org === 'huge' && f.lfs ? 2 ** 50 : f.size;
      s.blobId = f.blobId;
      s.size = size;
      if (f.lfs) s.lfs = { sha256: f.sha256, size, pointerSize: 134 };
    }
    siblings.push(s);
  }
  const body = {
    _id: crypto.createHash('md5').update(id).digest('hex').slice(0, 24), id, modelId: id, author: repo.org,
    sha: repo.commit, lastModified: '2025-01-01T00:00:00.000Z', private: false, disabled: false,
    gated: repo.org === 'gated' ? 'manual' : false, downloads: 0, likes: 0, tags: ['safetensors'],
    library_name: 'transformers', siblings, createdAt: '2025-01-01T00:00:00.000Z', usedStorage: 0,
  };
  send(req, res, 200, { 'Content-Type': 'application/json; charset=utf-8', 'X-Repo-Commit': repo.commit }, JSON.stringify(body));
}

function resolveFile(req, res, id, rev, file) {
  const repo = repos.get(id);
  if (!repo) return errorOut(req, res, 401, 'RepoNotFound', 'Repository not found');
  if (!authorize(req, res, repo)) return;
  if (!resolveRev(repo, rev)) return errorOut(req, res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
  const f = repo.files.get(file);
  if (!f) return errorOut(req, res, 404, 'EntryNotFound', `${file} does not exist on "${rev}"`);
  const common = { 'X-Repo-Commit': repo.commit, 'Accept-Ranges': 'bytes' };
  if (f.lfs) {
    return send(req, res, 302, {
      ...common, Location: `/cdn/${repo.id}/${f.sha256}?x-id=GetObject&sig=${crypto.randomBytes(4).toString('hex')}`,
      'X-Linked-Etag': `"${f.sha256}"`, 'X-Linked-Size': String(f.size), ETag: `"${f.blobId}"`, 'Content-Length': '0',
    }, '');
  }
  serveBytes(req, res, { path: f.path, size: f.size, org: repo.org, etag: f.blobId, inline: true }, common);
}

function serveBytes(req, res, b, extra) {
  const range = req.headers.range;
  const ignoreRange = b.org === 'norange';
  let start = 0, end = b.size - 1, status = 200;
  if (range && !ignoreRange) {
    const m = /^bytes=(\d+)-(\d*)$/.exec(range);
    if (!m) return send(req, res, 400, {}, 'bad range');
    start = Number(m[1]);
    if (m[2]) end = Math.min(Number(m[2]), b.size - 1);
    if (start >= b.size) return send(req, res, 416, { 'Content-Range': `bytes */${b.size}` }, '');
    status = 206;
  }
  let data = fs.readFileSync(b.path).subarray(start, end + 1);
  const headers = { ...extra, 'Content-Type': 'application/octet-stream', ETag: `"${b.etag}"`, 'Content-Length': String(data.length), 'Accept-Ranges': 'bytes' };
  if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${b.size}`;
  if (b.inline || req.method === 'HEAD') return send(req, res, status, headers, data);
  const key = `cdn:${b.path}`;
  if (b.org === 'corrupt') {
    data = Buffer.from(data);
    data[data.length >> 1] ^= 0x40;
  }
  if ((b.org === 'cut' || b.org === 'norange') && bump(key) === 1) {
    log(req, `${status} (cut)`);
    res.writeHead(status, headers);
    res.write(data.subarray(0, data.length >> 1), () => setTimeout(() => req.socket.destroy(), 50));
    return;
  }
  if (b.org === 'hang' && b.path.endsWith('.safetensors')) {
    log(req, `${status} (hang)`);
    res.writeHead(status, headers);
    res.flushHeaders();
    setTimeout(() => req.socket.destroy(), 20000).unref();
    return;
  }
  if (b.org === 'slow' && bump(key) === 1) {
    log(req, `${status} (stall)`);
    res.writeHead(status, headers);
    res.write(data.subarray(0, 16));
    setTimeout(() => req.socket.destroy(), 20000).unref();
    return;
  }
  send(req, res, status, headers, data);
}

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const p = decodeURIComponent(u.pathname);
  let m;
  if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(p))) return modelInfo(req, res, m[1], m[2], u.searchParams.get('blobs') === 'true');
  if ((m = /^\/cdn\/([^/]+\/[^/]+)\/([0-9a-f]{64})$/.exec(p))) {
    const repo = repos.get(m[1]);
    const f = repo && [...repo.files.values()].find((x) => x.sha256 === m[2]);
    if (!f) return send(req, res, 404, {}, 'no such object');
    return serveBytes(req, res, { path: f.path, size: f.size, org: repo.org, etag: m[2] }, {});
  }
  if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p))) return resolveFile(req, res, m[1], m[2], m[3]);
  errorOut(req, res, 404, 'NotFound', 'not found');
});
server.keepAliveTimeout = 1000;
server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(args['port-file'] + '.tmp', String(server.address().port));
  fs.renameSync(args['port-file'] + '.tmp', args['port-file']);
});
