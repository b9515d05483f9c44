'use strict';
// What every example here shares: kemu's .proto files loaded at run time (no generated
// code to keep in step with protos/), one channel with the keepalive settings kemu's
// servers accept, the bearer token, per-call deadlines, UNAVAILABLE retried with back-off
// on reads only (a write that timed out may have been applied, as kemu/client/client.py
// reasons), and the google.rpc.Status details the apiserver puts in error trailers.

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const googleProtos = require('google-proto-files');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');

// @grpc/proto-loader options, chosen so that objects read like Kubernetes manifests:
const LOADER_OPTIONS = {
  keepCase: false, // fields in lowerCamelCase, as in manifests: resourceVersion, containerPort
  longs: String, // int64 (generation, tailLines) as decimal strings: no precision lost
  enums: String, // enums by name: 'ADDED', 'FOREGROUND'
  defaults: true, // unset scalars read as their zero value ('' phase, [] items)
  oneofs: true, // object.kind names the member of Object's oneof that is set: 'pod'
  includeDirs: [PROTOS], // imports resolve as `kemu/v1/core.proto`, as protoc's -I protos
};

// Client-side keepalive within what kemu's servers permit (kemu/util/grpcopts.py accepts
// pings every 10 s, also without calls; kemu/client/aio.py pings every 20 s), so that a
// dead server is noticed during a long watch or `logs --follow`.
const CHANNEL_OPTIONS = {
  'grpc.keepalive_time_ms': 20000,
  'grpc.keepalive_timeout_ms': 10000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};

const CALL_SECONDS = 15; // deadline of one unary call
const READ_RETRY_SECONDS = 30; // how long a read retries while the server is UNAVAILABLE

/** The grpc-js package object of kemu.v1 (api.proto and everything it imports). */
function loadKemu() {
  const definition = protoLoader.loadSync('kemu/v1/api.proto', LOADER_OPTIONS);
  return grpc.loadPackageDefinition(definition).kemu.v1;
}

/** An error whose message is the one line a script prints before it exits non-zero. */
class Fatal extends Error {}

/** `SERVICE` code name of a grpc-js error: 'ABORTED', 'UNAVAILABLE', ... */
function codeName(err) {
  return grpc.status[err.code] || String(err.code);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The Resources and Discovery services of one apiserver, with the token on every call. */
class KemuClient {
  constructor(server, { token = process.env.KEMU_TOKEN || '' } = {}) {
    const v1 = loadKemu();
    this.server = server;
    this.token = token.trim();
    const creds = grpc.credentials.createInsecure();
    this.resources = new v1.Resources(server, creds, CHANNEL_OPTIONS);
    // Same target and options: grpc-js shares one subchannel between both stubs.
    this.discovery = new v1.Discovery(server, creds, CHANNEL_OPTIONS);
  }

  close() {
    this.resources.close();
    this.discovery.close();
  }

  /** Per-call metadata: `authorization: Bearer <token>` when there is a token. */
  metadata() {
    const md = new grpc.Metadata();
    if (this.token) md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  /** One unary call with a deadline; a read is retried with back-off while UNAVAILABLE. */
  async unary(stub, method, request, { read = false, seconds = CALL_SECONDS } = {}) {
    const retryUntil = Date.now() + (read ? READ_RETRY_SECONDS * 1000 : 0);
    let backoff = 100;
    for (;;) {
      try {
        return await new Promise((resolve, reject) => {
          const deadline = Date.now() + seconds * 1000;
          stub[method](request, this.metadata(), { deadline }, (err, reply) =>
            err ? reject(err) : resolve(reply));
        });
      } catch (err) {
        if (err.code === grpc.status.UNAVAILABLE && Date.now() + backoff < retryUntil) {
          console.log(`retry: ${method} UNAVAILABLE (${err.details}), again in ${backoff} ms`);
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 2000);
          continue;
        }
        throw err;
      }
    }
  }

  version() { return this.unary(this.discovery, 'Version', {}, { read: true }); }
  create(object) { return this.unary(this.resources, 'Create', { object }); }
  update(object) { return this.unary(this.resources, 'Update', { object }); }
  get(resource, namespace, name) {
    return this.unary(this.resources, 'Get', { key: { resource, namespace, name } },
      { read: true });
  }
  list(resource, namespace, { labelSelector = '', fieldSelector = '' } = {}) {
    return this.unary(this.resources, 'List',
      { resource, namespace, labelSelector, fieldSelector }, { read: true });
  }
  scale(resource, namespace, name, replicas) {
    return this.unary(this.resources, 'Scale',
      { key: { resource, namespace, name }, replicas });
  }
  delete(resource, namespace, name, { propagationPolicy = 'BACKGROUND' } = {}) {
    return this.unary(this.resources, 'Delete',
      { key: { resource, namespace, name }, propagationPolicy });
  }

  /** A server stream (Watch, Logs) whose deadline bounds the whole stream. */
  stream(method, request, seconds) {
    return this.resources[method](request, this.metadata(),
      { deadline: Date.now() + seconds * 1000 });
  }
}

// ---- google.rpc.Status details ---------------------------------------------------------

let rpcRoot = null;

/** google/rpc/status.proto and error_details.proto, as the npm package google-proto-files
 * ships them (ErrorInfo, BadRequest, RetryInfo, ... are looked up by their Any type URL). */
function rpcTypes() {
  if (rpcRoot === null) {
    rpcRoot = googleProtos.loadSync([googleProtos.getProtoPath('rpc', 'status.proto'),
      googleProtos.getProtoPath('rpc', 'error_details.proto')]);
  }
  return rpcRoot;
}

/**
 * The details of a grpc-js error, decoded from its `grpc-status-details-bin` trailer:
 * a list of {type: 'google.rpc.ErrorInfo', value: {...}}, or null without that trailer.
 */
function statusDetails(err) {
  const raw = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (!raw.length) return null;
  const root = rpcTypes();
  const status = root.lookupType('google.rpc.Status').decode(raw[0]);
  return status.details.map((any) => {
    const url = any.type_url || any.typeUrl || ''; // protobufjs' bundled Any keeps type_url
    const type = url.slice(url.lastIndexOf('/') + 1);
    let message;
    try {
      message = root.lookupType(type);
    } catch {
      return { type, value: null }; // not a google.rpc type: shown by name only
    }
    return { type, value: message.toObject(message.decode(any.value), { defaults: true }) };
  });
}

/** The one line a failed program prints: `CODE: details` for a gRPC error. */
function oneLine(err) {
  if (!(err instanceof Fatal) && typeof err.code === 'number' && err.details !== undefined) {
    return `${codeName(err)}: ${err.details}`;
  }
  return String(err.message).split('\n')[0];
}

/** Runs `main` and exits: 0 when it resolves, else 1 with one line on standard error. */
function run(main) {
  main().then(() => process.exit(0), (err) => {
    console.error(`error: ${oneLine(err)}`);
    process.exit(1);
  });
}

module.exports = {
  CHANNEL_OPTIONS, Fatal, KemuClient, LOADER_OPTIONS, codeName, grpc, run, sleep,
  statusDetails,
};
