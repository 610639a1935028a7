// Tests of the Node client against a live singleflightd and the fake.
//
// Run by interop_test.sh, which sets SF_TARGET (a singleflightd with a
// fetcher "slow" = echo:?delay=1s) and SF_FAKE_TARGET (fake_server.py).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client, SingleFlightError, flightKey } from '../../client/node/index.js';

const { SF_TARGET: target, SF_FAKE_TARGET: fakeTarget } = process.env;
const { vectors } = JSON.parse(
  readFileSync(new URL('./flight_key_vectors.json', import.meta.url), 'utf8'));

async function waitFor(condition, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(10);
  }
  return false;
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SingleFlightError, error);
    return error;
  }
  assert.fail('the call succeeded');
}

async function collect(iterable) {
  const items = [];
  for await (const item of iterable) items.push(item);
  return items;
}

describe('flightKey', () => {
  it('matches the shared vectors', () => {
    for (const { fetcher, key, flight_key: expected } of vectors) {
      assert.equal(flightKey(fetcher, key), expected);
    }
  });
});

describe('against singleflightd', { skip: !target && 'SF_TARGET is not set' }, () => {
  let client;
  before(() => { client = new Client(target, { timeoutMs: 10000 }); });
  after(() => client.close());
  const flights = async (key) => (await client.inflight()).filter((f) => f.key === key);

  it('lets concurrent callers share one flight', async () => {
    const results = await Promise.all(
      [1, 2, 3].map(() => client.do('js:shared', { fetcher: 'slow' })));
    assert.deepEqual(new Set(results.map((r) => r.value.toString())), new Set(['js:shared']));
    assert.ok(results.every((r) => r.shared));
  });

  it('hands the payload to the fetcher', async () => {
    const { value, shared } = await client.do('js:payload', { payload: 'hello' });
    assert.equal(value.toString(), 'hello');
    assert.equal(shared, false);
  });

  it('maps an unknown fetcher to NOT_FOUND', async () => {
    const error = await rejection(client.do('x', { fetcher: 'no-such-fetcher' }));
    assert.equal(error.codeName, 'NOT_FOUND');
    assert.match(error.details, /no-such-fetcher/);
  });

  it('maps an empty key to INVALID_ARGUMENT', async () => {
    assert.equal((await rejection(client.do(''))).codeName, 'INVALID_ARGUMENT');
  });

  it('gives up at the call deadline', async () => {
    const start = Date.now();
    const error = await rejection(client.do('js:deadline', { fetcher: 'slow', timeoutMs: 200 }));
    assert.equal(error.codeName, 'DEADLINE_EXCEEDED');
    assert.ok(Date.now() - start < 900);
  });

  it('gives up at the client default deadline', async () => {
    const hurried = new Client(target, { timeoutMs: 200 });
    try {
      const error = await rejection(hurried.do('js:default-deadline', { fetcher: 'slow' }));
      assert.equal(error.codeName, 'DEADLINE_EXCEEDED');
    } finally {
      hurried.close();
    }
  });

  it('lists flights with their waiters', async () => {
    const calls = [1, 2].map(() => client.do('js:waiters', { fetcher: 'slow' }));
    const joined = await waitFor(async () =>
      (await flights('js:waiters')).some((f) => f.waiters === 2));
    const [flight] = await flights('js:waiters');
    await Promise.all(calls);
    assert.ok(joined);
    assert.equal(flight.fetcher, 'slow');
    assert.ok(flight.ageMs > 0);
    assert.equal(flight.forgotten, false);
  });

  it('forgets a flight in progress', async () => {
    const first = client.do('js:forget', { fetcher: 'slow' });
    assert.ok(await waitFor(async () => (await flights('js:forget')).length === 1));
    assert.equal(await client.forget('js:forget', { fetcher: 'slow' }), true);
    assert.equal(await client.forget('js:forget', { fetcher: 'slow' }), false);
    const later = client.do('js:forget', { fetcher: 'slow' });
    // The later caller starts a new flight beside the forgotten one.
    const both = await waitFor(async () =>
      (await flights('js:forget')).map((f) => f.forgotten).sort().join() === 'false,true');
    const results = await Promise.all([first, later]);
    assert.ok(both);
    assert.deepEqual(results.map((r) => r.shared), [false, false]);
  });

  it('round-trips stream ids', async () => {
    const requests = [{ key: 'a', id: 7 }, { key: '', id: 8 }, { key: 'b', id: 2 ** 40 }, 'c'];
    const results = new Map((await collect(client.stream(requests))).map((r) => [r.id, r]));
    assert.deepEqual([...results.keys()].sort((x, y) => x - y), [4, 7, 8, 2 ** 40]);
    assert.equal(results.get(7).value.toString(), 'a');
    assert.equal(results.get(2 ** 40).request.key, 'b');
    assert.equal(results.get(4).value.toString(), 'c');
    assert.equal(results.get(8).error.codeName, 'INVALID_ARGUMENT');
  });

  it('streams results in completion order, from an async iterable too', async () => {
    async function* requests() {
      yield { key: 'js:stream-slow', fetcher: 'slow' };
      yield 'js:fast';
    }
    const ids = (await collect(client.stream(requests()))).map((r) => r.id);
    assert.deepEqual(ids, [2, 1]);
  });

  it('gives up a stream at its deadline', async () => {
    const error = await rejection(collect(
      client.stream([{ key: 'js:stream-deadline', fetcher: 'slow' }], { timeoutMs: 200 })));
    assert.equal(error.codeName, 'DEADLINE_EXCEEDED');
  });
});

describe('against the fake server', { skip: !fakeTarget && 'SF_FAKE_TARGET is not set' }, () => {
  let client;
  before(() => { client = new Client(fakeTarget, { timeoutMs: 10000 }); });
  after(() => client.close());
  const attempts = async (key) =>
    (await client.inflight()).filter((f) => f.key === key).map((f) => f.waiters);

  it('sends the flight key with Do', async () => {
    for (const { fetcher, key, flight_key: expected } of vectors) {
      assert.equal((await client.do(key, { fetcher })).value.toString(), expected);
    }
  });

  it("sends a stream's first request's flight key", async () => {
    const results = await collect(client.stream([{ key: 'hello', fetcher: 'slow' }, 'other']));
    assert.deepEqual(new Set(results.map((r) => r.value.toString())), new Set(['93923c4fd69e8af0']));
  });

  it('retries UNAVAILABLE', async () => {
    const { value } = await client.do('flaky:js', { fetcher: 'slow' });
    assert.equal(value.toString(), flightKey('slow', 'flaky:js'));
    assert.deepEqual(await attempts('flaky:js'), [3]);
  });

  it('never retries Forget', async () => {
    assert.equal((await rejection(client.forget('flaky:js-forget'))).codeName, 'UNAVAILABLE');
    assert.deepEqual(await attempts('flaky:js-forget'), [1]);
  });

  it('can turn retries off', async () => {
    const once = new Client(fakeTarget, { retry: { maxAttempts: 1 } });
    try {
      assert.equal((await rejection(once.do('flaky:js-once'))).codeName, 'UNAVAILABLE');
    } finally {
      once.close();
    }
    assert.deepEqual(await attempts('flaky:js-once'), [1]);
  });
});
