#!/usr/bin/env node
'use strict';
// A Deployment's life through kemu's gRPC API from Node.js, as a user would drive it:
// create 2 replicas of kemu/bootcamp:v1, watch its pods until they run, scale to 3, read a
// pod's log, delete the Deployment with its dependents and watch the pods go.
//
//   KEMU_SERVER=127.0.0.1:6443 [KEMU_TOKEN=...] node deployment.js
//
// Optional: KEMU_NAMESPACE (default "default"), KEMU_DEPLOYMENT (name, default
// "hello-node"), KEMU_WAIT_SECONDS (each wait's deadline, default 180).

const { Fatal, KemuClient, codeName, grpc, run, sleep } = require('./kemu');

const SERVER = process.env.KEMU_SERVER || '127.0.0.1:6443';
const NAMESPACE = process.env.KEMU_NAMESPACE || 'default';
const NAME = process.env.KEMU_DEPLOYMENT || 'hello-node';
const WAIT_SECONDS = Number(process.env.KEMU_WAIT_SECONDS || 180);
const IMAGE = 'kemu/bootcamp:v1';
const LOG_FOLLOW_SECONDS = 2;

function log(line) {
  console.log(line);
}

function deploymentObject(replicas) {
  const labels = { app: NAME };
  return {
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: NAME, namespace: NAMESPACE, labels },
      spec: {
        replicas,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            terminationGracePeriodSeconds: 5,
            containers: [{ name: 'bootcamp', image: IMAGE, ports: [{ containerPort: 8080 }] }],
          },
        },
      },
    },
  };
}

/** The Object envelope's member: the Pod of {pod: {...}}, whatever the kind. */
function inner(object) {
  return object[object.kind];
}

/** What a transition line shows of a pod: its phase (or Terminating) and node. */
function podSummary(pod) {
  const state = pod.metadata.deletionTimestamp ? 'Terminating' : (pod.status.phase || 'Pending');
  return pod.spec.nodeName ? `${state} on ${pod.spec.nodeName}` : state;
}

/** Prints a line each time a watched pod's summary changes. */
function podReporter() {
  const seen = new Map();
  return (type, pod) => {
    const name = pod.metadata.name;
    const now = type === 'DELETED' ? 'deleted' : podSummary(pod);
    const before = seen.get(name);
    if (now === before) return;
    log(`  pod ${name}: ${before === undefined ? `${type} ` : `${before} -> `}${now}`);
    if (type === 'DELETED') seen.delete(name); else seen.set(name, now);
  };
}

/**
 * List, then watch from the list's resourceVersion, keeping name -> object until
 * `done(state)`; relists after UNAVAILABLE or OUT_OF_RANGE (a resourceVersion too old), as
 * an informer does. `report(type, object)` sees every listed object and event.
 */
async function watchUntil(api, resource, selectors, { what, done, report = () => {} }) {
  const deadline = Date.now() + WAIT_SECONDS * 1000;
  let backoff = 100;
  for (;;) {
    const listing = await api.list(resource, NAMESPACE, selectors);
    const state = new Map();
    for (const object of listing.items) {
      state.set(inner(object).metadata.name, inner(object));
      report('ADDED', inner(object));
    }
    if (done(state)) return state;
    const seconds = (deadline - Date.now()) / 1000;
    try {
      await new Promise((resolve, reject) => {
        let finished = false;
        const call = api.stream('Watch', {
          resource, namespace: NAMESPACE, ...selectors, resourceVersion: listing.resourceVersion,
        }, seconds);
        call.on('data', (event) => {
          if (finished || event.type === 'BOOKMARK') return;
          const object = inner(event.object);
          if (event.type === 'DELETED') state.delete(object.metadata.name);
          else state.set(object.metadata.name, object);
          report(event.type, object);
          if (done(state)) {
            finished = true;
            call.cancel(); // ends the stream with CANCELLED, which is ours to ignore
            resolve();
          }
        });
        call.on('error', (err) => finished || reject(err));
        call.on('end', () => finished || reject(Object.assign(new Error('watch ended'),
          { code: grpc.status.UNAVAILABLE, details: 'the server closed the watch' })));
      });
      return state;
    } catch (err) {
      if (err.code === grpc.status.DEADLINE_EXCEEDED) {
        throw new Fatal(`timed out after ${WAIT_SECONDS}s waiting for ${what}`);
      }
      if (err.code !== grpc.status.UNAVAILABLE && err.code !== grpc.status.OUT_OF_RANGE) {
        throw err;
      }
      log(`watch: ${codeName(err)} (${err.details}), listing again in ${backoff} ms`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 2000);
    }
  }
}

async function waitRunning(api, replicas) {
  const selector = { labelSelector: `app=${NAME}` };
  log(`watch: pods ${selector.labelSelector} until ${replicas} Running`);
  const started = Date.now();
  const state = await watchUntil(api, 'pods', selector, {
    what: `${replicas} Running pods of deployment ${NAME}`,
    report: podReporter(),
    done: (pods) => {
      const live = [...pods.values()].filter((p) => !p.metadata.deletionTimestamp);
      return live.length === replicas && live.every((p) => p.status.phase === 'Running');
    },
  });
  const names = [...state.keys()].sort();
  log(`ready: ${names.length}/${replicas} pods Running after ` +
      `${((Date.now() - started) / 1000).toFixed(1)}s: ${names.join(' ')}`);
  return names;
}

/** Follows one pod's log for a moment (until at least one line came), then closes it. */
async function printLogs(api, pod) {
  log(`logs: pod ${pod}, following for ${LOG_FOLLOW_SECONDS}s`);
  let lines = 0;
  let partial = '';
  await new Promise((resolve, reject) => {
    let closing = false;
    let timeUp = false;
    const call = api.stream('Logs', { namespace: NAMESPACE, name: pod, follow: true,
      tailLines: 20 }, WAIT_SECONDS);
    const close = () => {
      closing = true;
      call.cancel();
      resolve();
    };
    const timer = setTimeout(() => {
      timeUp = true;
      if (lines > 0) close();
    }, LOG_FOLLOW_SECONDS * 1000);
    call.on('data', (chunk) => {
      const text = partial + chunk.data.toString('utf8');
      const complete = text.split('\n');
      partial = complete.pop();
      for (const line of complete) {
        log(`  | ${line}`);
        lines += 1;
      }
      if (timeUp && lines > 0 && !closing) close();
    });
    call.on('error', (err) => {
      clearTimeout(timer);
      if (!closing) reject(err);
    });
    call.on('end', () => {
      clearTimeout(timer);
      if (!closing) resolve();
    });
  });
  if (partial) {
    log(`  | ${partial}`);
    lines += 1;
  }
  if (lines === 0) throw new Fatal(`pod ${pod} logged nothing`);
  log(`logs: ${lines} line(s), stream closed`);
}

async function main() {
  const api = new KemuClient(SERVER);
  let created = false;
  try {
    const version = await api.version();
    log(`connected: ${SERVER}, kemu ${version.gitVersion} (${version.apiVersion}, store ` +
        `${version.store})${api.token ? ', with a bearer token' : ''}`);

    const stored = await api.create(deploymentObject(2));
    created = true;
    log(`create: deployment ${NAMESPACE}/${NAME}, 2 replicas of ${IMAGE} ` +
        `(resourceVersion ${stored.deployment.metadata.resourceVersion})`);
    await waitRunning(api, 2);

    const scaled = await api.scale('deployments', NAMESPACE, NAME, 3);
    log(`scale: deployment ${NAMESPACE}/${NAME} to ${inner(scaled).spec.replicas} replicas`);
    const pods = await waitRunning(api, 3);

    await printLogs(api, pods[0]);

    const deleted = await api.delete('deployments', NAMESPACE, NAME,
      { propagationPolicy: 'FOREGROUND' });
    log(`delete: deployment ${NAMESPACE}/${NAME}, propagation FOREGROUND ` +
        `(${deleted.deleted ? 'gone' : 'waiting on its dependents'})`);
    log(`watch: pods app=${NAME} until none is left`);
    await watchUntil(api, 'pods', { labelSelector: `app=${NAME}` }, {
      what: `the pods of deployment ${NAME} to be deleted`,
      report: podReporter(),
      done: (state) => state.size === 0,
    });
    await watchUntil(api, 'deployments', { fieldSelector: `metadata.name=${NAME}` }, {
      what: `deployment ${NAME} to be deleted`,
      done: (state) => state.size === 0,
    });
    created = false;
    log(`gone: deployment ${NAMESPACE}/${NAME} and its pods`);
    log('done');
  } finally {
    if (created) { // a failed run leaves no Deployment behind to block the next one
      await api.delete('deployments', NAMESPACE, NAME).catch(() => {});
    }
    api.close();
  }
}

run(main);
