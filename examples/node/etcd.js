#!/usr/bin/env node
'use strict';
// kemu's store speaks the etcd v3 gRPC API, so an unmodified etcd client library works
// against it: here the npm package etcd3, which knows nothing of kemu.
//
//   KEMU_STORE=127.0.0.1:2379 node etcd.js
//
// Under KEMU_ETCD_PREFIX (default "/node-demo/", cleared first) it puts a, b and c, reads
// one key and the prefix, watches a key while it is written, swaps a value with a
// transaction (a compare that holds, then a stale one that fails) and deletes b, leaving
// a=v3 and c=v1 for `etcdctl get --prefix` to see.

const { Etcd3 } = require('etcd3');
const { CHANNEL_OPTIONS, run } = require('./kemu');

const STORE = process.env.KEMU_STORE || '127.0.0.1:2379';
const PREFIX = process.env.KEMU_ETCD_PREFIX || '/node-demo/';
const CALL_MS = 10000;

function log(line) {
  console.log(line);
}

function show(map) {
  return Object.keys(map).sort().map((k) => `${k}=${map[k]}`).join(' ');
}

/** Resolves with the first value a watcher sees put, or rejects after `ms`. */
function nextPut(watcher, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the watch saw no put within ${ms} ms`)), ms);
    watcher.once('put', (kv) => {
      clearTimeout(timer);
      resolve(kv);
    });
    watcher.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function main() {
  const etcd = new Etcd3({
    hosts: `http://${STORE}`,
    grpcOptions: CHANNEL_OPTIONS,
    dialTimeout: 5000,
    // A deadline on every unary call; watch streams stay open until cancelled.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + CALL_MS }),
  });
  const key = (k) => `${PREFIX}${k}`;
  try {
    const cleared = await etcd.delete().prefix(PREFIX);
    log(`connected: ${STORE}, cleared ${cleared.deleted} key(s) under ${PREFIX}`);

    for (const k of ['a', 'b', 'c']) {
      const put = await etcd.put(key(k)).value('v1');
      log(`put: ${key(k)}=v1 (revision ${put.header.revision})`);
    }
    log(`get: ${key('a')}=${await etcd.get(key('a')).string()}`);
    const all = await etcd.getAll().prefix(PREFIX).strings();
    log(`range: prefix ${PREFIX}: ${Object.keys(all).length} key(s): ${show(all)}`);

    const watcher = await etcd.watch().key(key('a')).create();
    const seen = nextPut(watcher, CALL_MS);
    await etcd.put(key('a')).value('v2');
    const kv = await seen;
    log(`watch: saw put ${kv.key.toString()}=${kv.value.toString()} ` +
        `(mod_revision ${kv.mod_revision})`);
    await watcher.cancel();

    const swap = await etcd.if(key('a'), 'Value', '==', 'v2')
      .then(etcd.put(key('a')).value('v3')).commit();
    log(`txn: if ${key('a')}==v2 then put v3: succeeded=${swap.succeeded}`);
    const stale = await etcd.if(key('a'), 'Value', '==', 'v2')
      .then(etcd.put(key('a')).value('v4')).else(etcd.get(key('a'))).commit();
    const current = stale.responses[0].response_range.kvs[0].value.toString();
    log(`txn: if ${key('a')}==v2 then put v4: succeeded=${stale.succeeded}, ` +
        `else read ${key('a')}=${current}`);
    if (!swap.succeeded || stale.succeeded || current !== 'v3') {
      throw new Error('the compare-and-swap did not behave as etcd\'s');
    }

    const gone = await etcd.delete().key(key('b'));
    log(`delete: ${key('b')}: deleted=${gone.deleted}`);
    const left = await etcd.getAll().prefix(PREFIX).strings();
    log(`left: ${show(left)}`);
  } finally {
    etcd.close();
  }
}

run(main);
