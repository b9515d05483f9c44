package dev.kemu.examples;

import com.google.protobuf.ByteString;
import dev.kemu.api.v1.DeleteRequest;
import dev.kemu.api.v1.DeleteResponse;
import dev.kemu.api.v1.DiscoveryGrpc;
import dev.kemu.api.v1.GetRequest;
import dev.kemu.api.v1.ListRequest;
import dev.kemu.api.v1.ListResponse;
import dev.kemu.api.v1.LogChunk;
import dev.kemu.api.v1.LogsRequest;
import dev.kemu.api.v1.ObjectKey;
import dev.kemu.api.v1.PropagationPolicy;
import dev.kemu.api.v1.ResourcesGrpc;
import dev.kemu.api.v1.ScaleRequest;
import dev.kemu.api.v1.VersionInfo;
import dev.kemu.api.v1.VersionRequest;
import dev.kemu.api.v1.WatchEvent;
import dev.kemu.api.v1.WatchRequest;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.ForwardingClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * A small client for the kemu.v1 API, shaped like kemu/client/client.py.
 *
 * <p>Every unary call carries a deadline. Reads (Get, List, Version) are retried with
 * exponential back-off while the server is UNAVAILABLE, within a retry budget; writes are
 * not, since a write that timed out may have been applied. Keepalive matches what the
 * apiserver permits (kemu/util/grpcopts.py: pings without calls allowed, at most one per
 * 10 s), as kemu's own clients do: a ping every 30 s, also while no call is open. A
 * token, when given, is sent on every call as {@code authorization: Bearer <token>}.
 */
public final class KemuClient implements AutoCloseable {
    private static final long KEEPALIVE_SECONDS = 30;
    private static final long KEEPALIVE_TIMEOUT_SECONDS = 20;
    private static final int MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
    private static final long BACKOFF_INITIAL_MS = 100;
    private static final long BACKOFF_MAX_MS = 2000;

    private final String server;
    private final ManagedChannel channel;
    private final ResourcesGrpc.ResourcesBlockingStub resources;
    private final ResourcesGrpc.ResourcesStub asyncResources;
    private final DiscoveryGrpc.DiscoveryBlockingStub discovery;
    private final long callTimeoutMs;
    private final long readRetryMs;

    /**
     * @param server host:port of the apiserver
     * @param token bearer token, or null/empty to send none
     * @param callTimeoutMs deadline of each unary call
     * @param readRetryMs how long reads keep retrying while the server is UNAVAILABLE
     */
    public KemuClient(String server, String token, long callTimeoutMs, long readRetryMs) {
        this.server = server;
        this.callTimeoutMs = callTimeoutMs;
        this.readRetryMs = readRetryMs;
        this.channel = NettyChannelBuilder.forTarget(server)
                .usePlaintext()
                .keepAliveTime(KEEPALIVE_SECONDS, TimeUnit.SECONDS)
                .keepAliveTimeout(KEEPALIVE_TIMEOUT_SECONDS, TimeUnit.SECONDS)
                .keepAliveWithoutCalls(true)
                .maxInboundMessageSize(MAX_MESSAGE_BYTES)
                .build();
        Channel ch = channel;
        if (token != null && !token.isBlank()) {
            ch = ClientInterceptors.intercept(channel, new BearerToken(token.strip()));
        }
        this.resources = ResourcesGrpc.newBlockingStub(ch);
        this.asyncResources = ResourcesGrpc.newStub(ch);
        this.discovery = DiscoveryGrpc.newBlockingStub(ch);
    }

    public String server() {
        return server;
    }

    @Override
    public void close() {
        channel.shutdownNow();
        try {
            channel.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private ResourcesGrpc.ResourcesBlockingStub res() {
        return resources.withDeadlineAfter(callTimeoutMs, TimeUnit.MILLISECONDS);
    }

    /** Run a read, retrying UNAVAILABLE with back-off until the retry budget is spent. */
    private <T> T read(Supplier<T> call) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(readRetryMs);
        long backoff = BACKOFF_INITIAL_MS;
        while (true) {
            try {
                return call.get();
            } catch (StatusRuntimeException e) {
                boolean unavailable = e.getStatus().getCode() == Status.Code.UNAVAILABLE;
                long left = deadline - System.nanoTime();
                if (!unavailable || left < TimeUnit.MILLISECONDS.toNanos(backoff)) {
                    throw e;
                }
                sleep(backoff);
                backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
            }
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
        }
    }

    // ---- verbs ----------------------------------------------------------------------

    public VersionInfo version() {
        return read(() -> discovery.withDeadlineAfter(callTimeoutMs, TimeUnit.MILLISECONDS)
                .version(VersionRequest.getDefaultInstance()));
    }

    public dev.kemu.api.v1.Object create(dev.kemu.api.v1.Object obj) {
        return res().create(dev.kemu.api.v1.CreateRequest.newBuilder().setObject(obj).build());
    }

    public dev.kemu.api.v1.Object get(String resource, String namespace, String name) {
        GetRequest req = GetRequest.newBuilder().setKey(key(resource, namespace, name)).build();
        return read(() -> res().get(req));
    }

    public ListResponse list(String resource, String namespace, String labelSelector,
                             String fieldSelector) {
        ListRequest req = ListRequest.newBuilder().setResource(resource).setNamespace(namespace)
                .setLabelSelector(labelSelector).setFieldSelector(fieldSelector).build();
        return read(() -> res().list(req));
    }

    public dev.kemu.api.v1.Object scale(String resource, String namespace, String name,
                                        int replicas) {
        return res().scale(ScaleRequest.newBuilder().setKey(key(resource, namespace, name))
                .setReplicas(replicas).build());
    }

    public DeleteResponse delete(String resource, String namespace, String name,
                                 PropagationPolicy policy) {
        return res().delete(DeleteRequest.newBuilder().setKey(key(resource, namespace, name))
                .setPropagationPolicy(policy).build());
    }

    private static ObjectKey key(String resource, String namespace, String name) {
        return ObjectKey.newBuilder().setResource(resource).setNamespace(namespace)
                .setName(name).build();
    }

    /**
     * Open a container's log stream ({@code follow} keeps it open for new lines); read it
     * line by line with {@link LogStream#nextLine} and close it to cancel the call. The
     * whole stream ends at {@code timeoutMs} at the latest.
     */
    public LogStream logs(LogsRequest request, long timeoutMs) {
        LogStream stream = new LogStream();
        stream.ctx.run(() -> asyncResources.withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS)
                .logs(request, stream));
        return stream;
    }

    /** A log stream being received: complete lines, in order. */
    public static final class LogStream implements StreamObserver<LogChunk>, AutoCloseable {
        private final Context.CancellableContext ctx = Context.current().withCancellation();
        private final BlockingQueue<Object> received = new LinkedBlockingQueue<>();
        private final ByteArrayOutputStream partial = new ByteArrayOutputStream();
        private final ArrayDeque<String> lines = new ArrayDeque<>();
        private Status status;

        @Override
        public void onNext(LogChunk chunk) {
            received.add(chunk.getData());
        }

        @Override
        public void onError(Throwable t) {
            received.add(Status.fromThrowable(t));
        }

        @Override
        public void onCompleted() {
            received.add(Status.OK);
        }

        /**
         * The next complete line (without its newline), waiting up to {@code waitMs}; null
         * when none came in that time or the stream has ended ({@link #ended}). A stream
         * that failed throws its status; one that reached its deadline just ends.
         */
        public String nextLine(long waitMs) throws InterruptedException {
            long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitMs);
            while (lines.isEmpty() && status == null) {
                Object item = received.poll(Math.max(0, until - System.nanoTime()),
                        TimeUnit.NANOSECONDS);
                if (item == null) {
                    return null;
                } else if (item instanceof ByteString data) {
                    split(data);
                } else if (item instanceof Status s) {
                    status = s;
                    if (partial.size() > 0) {
                        lines.add(partial.toString(StandardCharsets.UTF_8));
                        partial.reset();
                    }
                }
            }
            if (!lines.isEmpty()) {
                return lines.poll();
            }
            Status.Code code = status.getCode();
            if (code != Status.Code.OK && code != Status.Code.DEADLINE_EXCEEDED
                    && code != Status.Code.CANCELLED) {
                throw status.asRuntimeException();
            }
            return null;
        }

        /** True once the server has closed the stream (or it failed or timed out). */
        public boolean ended() {
            return status != null && lines.isEmpty();
        }

        private void split(ByteString data) {
            for (byte b : data.toByteArray()) {
                if (b == '\n') {
                    lines.add(partial.toString(StandardCharsets.UTF_8));
                    partial.reset();
                } else {
                    partial.write(b);
                }
            }
        }

        @Override
        public void close() {
            ctx.cancel(null);
        }
    }

    /** What a watch handler says after each event. */
    public enum Next { CONTINUE, STOP }

    /** Receives the events of {@link #watch}. */
    public interface WatchHandler {
        /** The initial list (resourceVersion of the list in {@code list}). */
        Next listed(ListResponse list);

        /** One event; BOOKMARKs are not passed on. */
        Next event(WatchEvent event);
    }

    /**
     * List, then watch from the list's resourceVersion until the handler says STOP, as an
     * informer does. A stream the server breaks (UNAVAILABLE) resumes from the last
     * resourceVersion seen, after a back-off, so no event is missed or repeated; one whose
     * resourceVersion is too old to resume from (OUT_OF_RANGE) lists again. Gives up with
     * DEADLINE_EXCEEDED after {@code timeoutMs} in all.
     */
    public void watch(String resource, String namespace, String labelSelector,
                      String fieldSelector, long timeoutMs, WatchHandler handler) {
        Deadline deadline = Deadline.after(timeoutMs, TimeUnit.MILLISECONDS);
        String rv = null;
        long backoff = BACKOFF_INITIAL_MS;
        while (true) {
            if (rv == null) {
                ListResponse list = list(resource, namespace, labelSelector, fieldSelector);
                if (handler.listed(list) == Next.STOP) {
                    return;
                }
                rv = list.getResourceVersion();
            }
            WatchRequest req = WatchRequest.newBuilder().setResource(resource)
                    .setNamespace(namespace).setLabelSelector(labelSelector)
                    .setFieldSelector(fieldSelector).setResourceVersion(rv)
                    .setAllowBookmarks(true).build();
            Context.CancellableContext ctx = Context.current().withCancellation();
            Context previous = ctx.attach();
            try {
                Iterator<WatchEvent> it = resources.withDeadline(deadline).watch(req);
                while (it.hasNext()) {
                    WatchEvent ev = it.next();
                    rv = resourceVersionOf(ev.getObject(), rv);
                    backoff = BACKOFF_INITIAL_MS;
                    if (ev.getType() == WatchEvent.Type.BOOKMARK) {
                        continue;
                    }
                    if (handler.event(ev) == Next.STOP) {
                        return;
                    }
                }
                // The server closed the stream without an error: resume after a back-off.
                sleep(backoff);
                backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
            } catch (StatusRuntimeException e) {
                Status.Code code = e.getStatus().getCode();
                if (code == Status.Code.OUT_OF_RANGE) {
                    rv = null;
                } else if (code != Status.Code.UNAVAILABLE || deadline.isExpired()) {
                    throw e;
                } else {
                    long left = deadline.timeRemaining(TimeUnit.MILLISECONDS);
                    sleep(Math.max(1, Math.min(backoff, left)));
                    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
                }
            } finally {
                ctx.detach(previous);
                ctx.cancel(null);
            }
            if (deadline.isExpired()) {
                throw Status.DEADLINE_EXCEEDED.withDescription("watch deadline exceeded")
                        .asRuntimeException();
            }
        }
    }

    /** metadata.resourceVersion of whatever kind the envelope holds. */
    static String resourceVersionOf(dev.kemu.api.v1.Object obj, String fallback) {
        for (var field : obj.getAllFields().entrySet()) {
            if (field.getValue() instanceof com.google.protobuf.Message msg) {
                var meta = msg.getDescriptorForType().findFieldByName("metadata");
                if (meta != null) {
                    var m = (dev.kemu.api.v1.ObjectMeta) msg.getField(meta);
                    if (!m.getResourceVersion().isEmpty()) {
                        return m.getResourceVersion();
                    }
                }
            }
        }
        return fallback;
    }

    /** Adds {@code authorization: Bearer <token>} to every call (kemu/client/auth.py). */
    private static final class BearerToken implements ClientInterceptor {
        private static final Metadata.Key<String> AUTHORIZATION =
                Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
        private final String value;

        BearerToken(String token) {
            this.value = "Bearer " + token;
        }

        @Override
        public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
                MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
            return new ForwardingClientCall.SimpleForwardingClientCall<>(
                    next.newCall(method, options)) {
                @Override
                public void start(Listener<RespT> listener, Metadata headers) {
                    headers.discardAll(AUTHORIZATION);
                    headers.put(AUTHORIZATION, value);
                    super.start(listener, headers);
                }
            };
        }
    }
}
