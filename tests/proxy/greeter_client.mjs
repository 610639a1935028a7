// A demo.v1.Greeter client (demo.proto) in Node: @grpc/grpc-js and
// @grpc/proto-loader (keepCase), from client/node/node_modules (npm ci
// --prefix client/node), with nothing singleflight-specific, so that it can
// call greeter_upstream.py directly or through singleflightd's proxy mode.
//
// Usage: node tests/proxy/greeter_client.mjs --target HOST:PORT
//        [--timeout SECS] COMMAND ...
//
//   hello NAME [-n N] [--delay_ms D] [--metadata]
//   count
//   fail CODE MESSAGE [-n N] [--delay_ms D]
//   countdown [NAME]
//   chat NAME...
//   gather NAME...
//
// Each prints what greeter_client.py's command of the same name prints, in
// the same format (see there), with the same exit status.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(
  new URL('../../client/node/package.json', import.meta.url));
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const protoPath = fileURLToPath(new URL('demo.proto', import.meta.url));
const definition = protoLoader.loadSync(protoPath, {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const { Greeter } = grpc.loadPackageDefinition(definition).demo.v1;
const codeNames = Object.fromEntries(
  Object.entries(grpc.status).map(([name, value]) => [value, name]));

function usage(message) {
  console.error(`greeter_client.mjs: ${message}`);
  process.exit(2);
}

// --target and --timeout, then the command, its positional arguments and
// its options (-n, --delay_ms, --metadata).
function parseArgs(argv) {
  const args = { timeout: 30, n: 1, delay_ms: 0, metadata: false, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--target') args.target = value();
    else if (arg === '--timeout') args.timeout = Number(value());
    else if (arg === '-n') args.n = Number.parseInt(value(), 10);
    else if (arg === '--delay_ms') args.delay_ms = Number.parseInt(value(), 10);
    else if (arg === '--metadata') args.metadata = true;
    else if (arg.startsWith('-') && arg.length > 1) usage(`unknown ${arg}`);
    else args.rest.push(arg);
  }
  if (!args.target) usage('--target is required');
  if (args.rest.length === 0) usage('no command');
  args.command = args.rest.shift();
  return args;
}

function deadline(args) {
  return new Date(Date.now() + args.timeout * 1000);
}

// The sorted distinct values (by length, then text, as greeter_client.py).
function distinct(values) {
  const set = [...new Set(values)].sort(
    (a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
  return set.length ? set.join(',') : '-';
}

function errorLine(error) {
  return `error ${codeNames[error.code] ?? error.code}: ${error.details}`;
}

// A unary call: resolves to { error, reply, initial, trailing } once both
// the callback and the status have come.
function unary(client, method, request, args) {
  return new Promise((resolve) => {
    const result = { initial: null, trailing: null };
    let pending = 2;
    const done = () => { if (--pending === 0) resolve(result); };
    const call = client[method](request, { deadline: deadline(args) },
      (error, reply) => { result.error = error; result.reply = reply; done(); });
    call.on('metadata', (metadata) => { result.initial = metadata; });
    call.on('status', (status) => { result.trailing = status.metadata; done(); });
  });
}

function values(metadata, key) {
  return metadata ? metadata.get(key).map(String) : [];
}

async function hello(client, args) {
  const [name] = args.rest;
  if (name === undefined) usage('hello NAME');
  const request = { name, delay_ms: args.delay_ms };
  const results = await Promise.all(Array.from({ length: args.n },
    () => unary(client, 'SayHello', request, args)));
  const replies = results.filter((r) => !r.error).map((r) => r.reply);
  const errors = results.filter((r) => r.error).map((r) => errorLine(r.error));
  const ok = results.filter((r) => !r.error);
  console.log(`replies=${replies.length} ` +
    `distinct=${new Set(replies.map((r) => JSON.stringify(r))).size} ` +
    `upstream_calls=${distinct(replies.map((r) => String(r.upstream_calls)))}`);
  if (args.metadata) {
    console.log(`x-upstream-served-by=${distinct(ok.flatMap(
      (r) => values(r.initial, 'x-upstream-served-by')))} ` +
      `x-upstream-calls=${distinct(ok.flatMap(
        (r) => values(r.trailing, 'x-upstream-calls')))}`);
  }
  for (const line of [...new Set(errors)].sort()) console.log(line);
  return errors.length ? 1 : 0;
}

// The fields of a protobuf message: [number, wireType, value] (enough for a
// google.rpc.Status and its Anys).
function* decodeFields(data) {
  let pos = 0;
  const varint = () => {
    let value = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= data.length) throw new Error('truncated');
      const byte = data[pos++];
      value |= BigInt(byte & 0x7f) << shift;
      shift += 7n;
      if (!(byte & 0x80)) return value;
    }
  };
  while (pos < data.length) {
    const key = varint();
    const number = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (wireType === 0) {
      yield [number, wireType, varint()];
    } else if (wireType === 2) {
      const length = Number(varint());
      if (pos + length > data.length) throw new Error('truncated');
      yield [number, wireType, data.subarray(pos, pos + length)];
      pos += length;
    } else {
      throw new Error(`unexpected wire type ${wireType}`);
    }
  }
}

function describeStatus(data) {
  let code = 0n;
  let message = '';
  const types = [];
  try {
    for (const [number, , value] of decodeFields(data)) {
      if (number === 1) code = value;
      else if (number === 2) message = value.toString('utf8');
      else if (number === 3) {
        for (const [n, , v] of decodeFields(value)) {
          if (n === 1) types.push(v.toString('utf8'));
        }
      }
    }
  } catch (error) {
    return `undecodable (${error.message})`;
  }
  return `code=${code} message=${JSON.stringify(message)} ` +
    `details=${types.join(',') || '-'}`;
}

// The lines fail prints of one finished Fail call, and whether it failed
// with the code asked for.
function describeFail({ error, reply }, wanted) {
  if (!error) return [`code=OK(0)\nmessage=${reply.message}`, wanted === 0];
  const lines = [
    `code=${codeNames[error.code] ?? 'UNKNOWN'}(${error.code})`,
    `message=${error.details}`,
  ];
  const trailers = error.metadata ? error.metadata.toJSON() : {};
  const [details] = trailers['grpc-status-details-bin'] ?? [];
  if (details) {
    lines.push(`details=${details.length} bytes: ${describeStatus(details)}`,
      `details_hex=${details.toString('hex')}`);
  } else {
    lines.push('details=none');
  }
  const rest = [];
  for (const [key, list] of Object.entries(trailers)) {
    // grpc-js puts a Trailers-Only response's content-type among them.
    if (key === 'grpc-status-details-bin' || key === 'content-type') continue;
    for (const value of list) {
      rest.push(`trailer ${key}=${Buffer.isBuffer(value)
        ? value.toString('hex') : value}`);
    }
  }
  lines.push(...rest.sort());
  return [lines.join('\n'), error.code === wanted];
}

async function fail(client, args) {
  const [code, message] = args.rest;
  if (message === undefined) usage('fail CODE MESSAGE');
  const wanted = Number.parseInt(code, 10);
  const request = { code: wanted, message, delay_ms: args.delay_ms };
  const results = (await Promise.all(Array.from({ length: args.n },
    () => unary(client, 'Fail', request, args))))
    .map((result) => describeFail(result, wanted));
  const outputs = [...new Set(results.map(([output]) => output))].sort();
  if (args.n > 1) console.log(`calls=${args.n} distinct=${outputs.length}`);
  console.log(outputs.join('\n'));
  return results.every(([, ok]) => ok) ? 0 : 1;
}

function count(client, args) {
  return unary(client, 'Count', {}, args).then(({ error, reply }) => {
    if (error) throw error;
    console.log(String(reply.calls));
    return 0;
  });
}

function readStream(call) {
  return new Promise((resolve, reject) => {
    call.on('data', (reply) => console.log(reply.message));
    call.on('error', reject);
    call.on('end', () => resolve(0));
  });
}

function countdown(client, args) {
  return readStream(client.Countdown({ name: args.rest[0] ?? '' },
    { deadline: deadline(args) }));
}

function chat(client, args) {
  if (args.rest.length === 0) usage('chat NAME...');
  const call = client.Chat({ deadline: deadline(args) });
  const done = readStream(call);
  for (const name of args.rest) call.write({ name });
  call.end();
  return done;
}

function gather(client, args) {
  if (args.rest.length === 0) usage('gather NAME...');
  return new Promise((resolve, reject) => {
    const call = client.Gather({ deadline: deadline(args) }, (error, reply) => {
      if (error) reject(error);
      else { console.log(reply.message); resolve(0); }
    });
    for (const name of args.rest) call.write({ name });
    call.end();
  });
}

const commands = { hello, count, fail, countdown, chat, gather };
const args = parseArgs(process.argv.slice(2));
const run = commands[args.command];
if (!run) usage(`unknown command ${args.command}`);
const client = new Greeter(args.target, grpc.credentials.createInsecure());
try {
  process.exitCode = await run(client, args);
} catch (error) {
  console.log(errorLine(error));
  process.exitCode = 1;
} finally {
  client.close();
}
