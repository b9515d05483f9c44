#!/usr/bin/env node
'use strict';
// kemu's API errors as a Node.js client sees them: the gRPC status code, the message, and
// the google.rpc.Status details in the `grpc-status-details-bin` trailer (an ErrorInfo with
// Kubernetes' reason, and a BadRequest naming each invalid field).
//
//   KEMU_SERVER=127.0.0.1:6443 [KEMU_TOKEN=...] node errors.js
//
// It provokes a Conflict (an update with a stale resourceVersion) and an Invalid object (a
// Deployment with replicas -1 and a container without an image), prints both, and exits 0
// when the server refused both; any other outcome exits non-zero with one line.

const crypto = require('node:crypto');
const { Fatal, KemuClient, codeName, grpc, run, statusDetails } = require('./kemu');

const SERVER = process.env.KEMU_SERVER || '127.0.0.1:6443';
const NAMESPACE = process.env.KEMU_NAMESPACE || 'default';

function log(line) {
  console.log(line);
}

/** Prints one refused call: code, message, then each detail on its own line. */
function show(label, err) {
  log(`${label}: ${codeName(err)}: ${err.details}`);
  const details = statusDetails(err);
  if (details === null) {
    log('  details: none (no grpc-status-details-bin trailer)');
    return;
  }
  for (const { type, value } of details) {
    if (type === 'google.rpc.ErrorInfo') {
      log(`  ErrorInfo: reason=${value.reason} domain=${value.domain} ` +
          `metadata=${JSON.stringify(sorted(value.metadata))}`);
    } else if (type === 'google.rpc.BadRequest') {
      for (const v of value.fieldViolations) log(`  BadRequest: ${v.field}: ${v.description}`);
    } else {
      log(`  ${type}: ${value === null ? '(not a google.rpc type)' : JSON.stringify(value)}`);
    }
  }
}

function sorted(map) {
  return Object.fromEntries(Object.entries(map).sort(([a], [b]) => a.localeCompare(b)));
}

/** Runs `call`, which must fail with `code`; returns the error. */
async function refused(code, what, call) {
  try {
    await call();
  } catch (err) {
    if (err.code === code) return err;
    throw err;
  }
  throw new Fatal(`${what} succeeded; expected ${grpc.status[code]}`);
}

async function conflict(api) {
  const name = `errors-demo-${crypto.randomBytes(3).toString('hex')}`;
  const created = await api.create({ configMap: { apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name, namespace: NAMESPACE }, data: { step: '1' } } });
  try {
    const stale = created.configMap;
    const fresh = await api.update({ configMap: { ...stale, data: { step: '2' } } });
    log(`conflict: configmap ${NAMESPACE}/${name} updated, resourceVersion ` +
        `${stale.metadata.resourceVersion} -> ${fresh.configMap.metadata.resourceVersion}; ` +
        `updating again with ${stale.metadata.resourceVersion}`);
    const err = await refused(grpc.status.ABORTED, 'an update with a stale resourceVersion',
      () => api.update({ configMap: { ...stale, data: { step: '3' } } }));
    show('conflict', err);
  } finally {
    await api.delete('configmaps', NAMESPACE, name);
  }
}

async function invalid(api) {
  const name = `errors-demo-${crypto.randomBytes(3).toString('hex')}`;
  const labels = { app: name };
  log(`invalid: creating deployment ${NAMESPACE}/${name} with replicas -1 and a container ` +
      'without an image');
  const err = await refused(grpc.status.INVALID_ARGUMENT, 'creating an invalid Deployment',
    () => api.create({ deployment: { apiVersion: 'apps/v1', kind: 'Deployment',
      metadata: { name, namespace: NAMESPACE },
      spec: { replicas: -1, selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: 'app' }] } } } } }));
  show('invalid', err);
}

async function main() {
  const api = new KemuClient(SERVER);
  try {
    const version = await api.version(); // a read: retried while the server is UNAVAILABLE
    log(`connected: ${SERVER}, kemu ${version.gitVersion}` +
        `${api.token ? ', with a bearer token' : ''}`);
    await conflict(api);
    await invalid(api);
  } finally {
    api.close();
  }
}

run(main);
