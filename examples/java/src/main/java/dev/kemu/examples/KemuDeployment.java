package dev.kemu.examples;

import dev.kemu.api.v1.Container;
import dev.kemu.api.v1.ContainerPort;
import dev.kemu.api.v1.Deployment;
import dev.kemu.api.v1.DeploymentSpec;
import dev.kemu.api.v1.LabelSelector;
import dev.kemu.api.v1.ListResponse;
import dev.kemu.api.v1.LogsRequest;
import dev.kemu.api.v1.ObjectMeta;
import dev.kemu.api.v1.Pod;
import dev.kemu.api.v1.PodSpec;
import dev.kemu.api.v1.PodTemplateSpec;
import dev.kemu.api.v1.PropagationPolicy;
import dev.kemu.api.v1.VersionInfo;
import dev.kemu.api.v1.WatchEvent;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Predicate;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A Deployment's life through the kemu.v1 gRPC API, as a Java program would drive it.
 *
 * <p>Creates a Deployment of kemu/bootcamp:v1 with 2 replicas, watches its pods (by label
 * selector) until both are Running, scales it to 3 and watches until 3 are Running, streams
 * one pod's log, deletes the Deployment with foreground propagation and watches until its
 * pods and then the Deployment itself are gone. Every pod state change is printed.
 *
 * <p>Configured by the environment: KEMU_SERVER (host:port, default 127.0.0.1:6443),
 * KEMU_TOKEN (bearer token, optional), KEMU_NAMESPACE (default "default"),
 * KEMU_DEPLOYMENT (default "hello-java"), KEMU_IMAGE (default "kemu/bootcamp:v1"),
 * KEMU_WAIT_SECONDS (how long each wait may take, default 180), KEMU_RETRY_SECONDS (how
 * long reads retry while the apiserver is UNAVAILABLE, default 30), KEMU_DEBUG (any value:
 * gRPC's own log and stack traces on stderr). Exits 0 on success; on an error it prints
 * one line and exits 1 (2 for a bad setting), deleting the Deployment if it created it.
 */
public final class KemuDeployment {
    private static final String PROG = "kemu-java";
    private static final long CALL_TIMEOUT_MS = 30_000;

    private final KemuClient client;
    private final String namespace;
    private final String name;
    private final String image;
    private final long waitMs;
    private final String selector;
    /** The Deployment's pods as last seen (name -> pod), kept across the watches. */
    private final Map<String, Pod> pods = new TreeMap<>();
    private boolean created;
    private boolean deleted;

    KemuDeployment(KemuClient client, String namespace, String name, String image,
                   long waitMs) {
        this.client = client;
        this.namespace = namespace;
        this.name = name;
        this.image = image;
        this.waitMs = waitMs;
        this.selector = "app=" + name;
    }

    public static void main(String[] args) {
        boolean debug = !env("KEMU_DEBUG", "").isEmpty();
        if (!debug) {
            // gRPC and Netty log through java.util.logging; the user sees our lines only.
            Logger.getLogger("").setLevel(Level.OFF);
        }
        String server = env("KEMU_SERVER", "127.0.0.1:6443");
        long waitSeconds = seconds("KEMU_WAIT_SECONDS", 180);
        long retrySeconds = seconds("KEMU_RETRY_SECONDS", 30);
        int code;
        try (KemuClient client = new KemuClient(server, System.getenv("KEMU_TOKEN"),
                CALL_TIMEOUT_MS, retrySeconds * 1000)) {
            KemuDeployment run = new KemuDeployment(client, env("KEMU_NAMESPACE", "default"),
                    env("KEMU_DEPLOYMENT", "hello-java"), env("KEMU_IMAGE", "kemu/bootcamp:v1"),
                    waitSeconds * 1000);
            code = run.runCleaningUp(debug);
        }
        System.exit(code);
    }

    private int runCleaningUp(boolean debug) {
        try {
            run();
            return 0;
        } catch (StatusRuntimeException e) {
            if (debug) {
                e.printStackTrace();
            }
            cleanUp();
            return fail(1, describe(e));
        } catch (RuntimeException | InterruptedException e) {
            if (debug) {
                e.printStackTrace();
            }
            cleanUp();
            return fail(1, e.toString());
        }
    }

    void run() throws InterruptedException {
        VersionInfo v = client.version();
        say("connected to " + client.server() + " (kemu " + v.getGitVersion() + ", "
                + v.getApiVersion() + ")");

        client.create(dev.kemu.api.v1.Object.newBuilder().setDeployment(deployment(2)).build());
        created = true;
        say("created deployment " + namespace + "/" + name + " (2 replicas of " + image + ")");
        waitRunning(2);

        client.scale("deployments", namespace, name, 3);
        say("scaled deployment " + namespace + "/" + name + " to 3 replicas");
        Map<String, Pod> running = waitRunning(3);

        streamLogs(running.keySet().iterator().next(), 5);

        client.delete("deployments", namespace, name, PropagationPolicy.FOREGROUND);
        deleted = true;
        say("deleting deployment " + namespace + "/" + name + " (propagation: Foreground)");
        say("waiting for the pods to be gone");
        watchPods("the pods to be gone", Map::isEmpty);
        say("all pods of " + namespace + "/" + name + " are gone");
        waitDeploymentGone();
        say("deployment " + namespace + "/" + name + " is gone");
        say("done");
    }

    private Deployment deployment(int replicas) {
        Map<String, String> labels = Map.of("app", name);
        Container container = Container.newBuilder().setName("bootcamp").setImage(image)
                .addPorts(ContainerPort.newBuilder().setName("http").setContainerPort(8080))
                .build();
        return Deployment.newBuilder()
                .setApiVersion("apps/v1").setKind("Deployment")
                .setMetadata(ObjectMeta.newBuilder().setName(name).setNamespace(namespace)
                        .putAllLabels(labels))
                .setSpec(DeploymentSpec.newBuilder()
                        .setReplicas(replicas)
                        .setSelector(LabelSelector.newBuilder().putAllMatchLabels(labels))
                        .setTemplate(PodTemplateSpec.newBuilder()
                                .setMetadata(ObjectMeta.newBuilder().putAllLabels(labels))
                                .setSpec(PodSpec.newBuilder()
                                        .setTerminationGracePeriodSeconds(5)
                                        .addContainers(container))))
                .build();
    }

    /** Watch the Deployment's pods until {@code n} are Running and no others exist. */
    private Map<String, Pod> waitRunning(int n) {
        say("waiting for " + n + " pods Running (selector " + selector + ")");
        Map<String, Pod> running = watchPods(n + " pods Running",
                p -> countRunning(p) == n && p.size() == n);
        say(n + "/" + n + " pods Running: " + String.join(", ", running.keySet()));
        return running;
    }

    private static int countRunning(Map<String, Pod> pods) {
        return (int) pods.values().stream().filter(p -> state(p).equals("Running")).count();
    }

    /**
     * Watch the pods matching the selector, printing each pod's state changes, until
     * {@code done} holds for the pods that exist; returns them (name -> pod, by name).
     */
    private Map<String, Pod> watchPods(String what, Predicate<Map<String, Pod>> done) {
        KemuClient.WatchHandler handler = new KemuClient.WatchHandler() {
            @Override
            public KemuClient.Next listed(ListResponse list) {
                Map<String, Pod> now = new TreeMap<>();
                list.getItemsList().forEach(o -> now.put(o.getPod().getMetadata().getName(),
                        o.getPod()));
                pods.keySet().stream().filter(k -> !now.containsKey(k)).toList()
                        .forEach(k -> transition(pods, k, null));
                now.forEach((k, pod) -> transition(pods, k, pod));
                return done.test(pods) ? KemuClient.Next.STOP : KemuClient.Next.CONTINUE;
            }

            @Override
            public KemuClient.Next event(WatchEvent ev) {
                Pod pod = ev.getObject().getPod();
                String podName = pod.getMetadata().getName();
                transition(pods, podName, ev.getType() == WatchEvent.Type.DELETED ? null : pod);
                return done.test(pods) ? KemuClient.Next.STOP : KemuClient.Next.CONTINUE;
            }
        };
        timed(what, () -> client.watch("pods", namespace, selector, "", waitMs, handler));
        return new TreeMap<>(pods);
    }

    /** Record a pod's new version (null: deleted), printing its state when it changed. */
    private static void transition(Map<String, Pod> pods, String podName, Pod pod) {
        Pod old = pod == null ? pods.remove(podName) : pods.put(podName, pod);
        String before = old == null ? "(none)" : state(old);
        String after = pod == null ? "(deleted)" : state(pod);
        if (!before.equals(after)) {
            String where = pod != null && !pod.getSpec().getNodeName().isEmpty()
                    ? " on " + pod.getSpec().getNodeName() : "";
            say("  pod " + podName + ": " + before + " -> " + after + where);
        }
    }

    /** Terminating once deletion started, else the phase (Pending when not yet set). */
    private static String state(Pod pod) {
        if (pod.getMetadata().hasDeletionTimestamp()) {
            return "Terminating";
        }
        String phase = pod.getStatus().getPhase();
        return phase.isEmpty() ? "Pending" : phase;
    }

    /** Follow one pod's log and print up to {@code max} lines as they arrive. */
    private void streamLogs(String pod, int max) throws InterruptedException {
        say("logs of pod " + pod + " (following, up to " + max + " lines):");
        LogsRequest req = LogsRequest.newBuilder().setNamespace(namespace).setName(pod)
                .setFollow(true).build();
        int printed = 0;
        try (KemuClient.LogStream logs = client.logs(req, waitMs)) {
            // The first line may take a moment (the container has just started); after it,
            // stop once the log has been quiet for 2 s.
            long wait = Math.min(waitMs, 60_000);
            while (printed < max) {
                String line = logs.nextLine(wait);
                if (line == null) {
                    break;
                }
                say("  | " + line);
                printed++;
                wait = 2_000;
            }
        }
        if (printed == 0) {
            throw Status.DEADLINE_EXCEEDED.withDescription("no log line from pod " + pod
                    + " within " + Math.min(waitMs, 60_000) / 1000 + "s").asRuntimeException();
        }
        say("read " + printed + " log line(s) from pod " + pod);
    }

    private void waitDeploymentGone() {
        KemuClient.WatchHandler handler = new KemuClient.WatchHandler() {
            @Override
            public KemuClient.Next listed(ListResponse list) {
                return list.getItemsCount() == 0 ? KemuClient.Next.STOP : KemuClient.Next.CONTINUE;
            }

            @Override
            public KemuClient.Next event(WatchEvent ev) {
                return ev.getType() == WatchEvent.Type.DELETED
                        ? KemuClient.Next.STOP : KemuClient.Next.CONTINUE;
            }
        };
        timed("deployment " + namespace + "/" + name + " to be gone", () -> client.watch(
                "deployments", namespace, "", "metadata.name=" + name, waitMs, handler));
    }

    /** Run a wait; a deadline it hits is reported as what it was waiting for. */
    private void timed(String what, Runnable wait) {
        try {
            wait.run();
        } catch (StatusRuntimeException e) {
            if (e.getStatus().getCode() != Status.Code.DEADLINE_EXCEEDED) {
                throw e;
            }
            throw Status.DEADLINE_EXCEEDED.withDescription("timed out after "
                    + waitMs / 1000 + "s waiting for " + what).asRuntimeException();
        }
    }

    /** After a failure: delete what we created, so that a rerun starts clean. */
    private void cleanUp() {
        if (!created || deleted) {
            return;
        }
        try {
            client.delete("deployments", namespace, name, PropagationPolicy.BACKGROUND);
            say("cleaned up: deleted deployment " + namespace + "/" + name);
        } catch (StatusRuntimeException e) {
            say("could not delete deployment " + namespace + "/" + name + ": " + describe(e));
        }
    }

    private String describe(StatusRuntimeException e) {
        Status s = e.getStatus();
        String what = s.getDescription() != null ? s.getDescription() : "";
        Throwable cause = s.getCause();
        if (cause != null && cause.getMessage() != null && !what.contains(cause.getMessage())) {
            what = what.isEmpty() ? cause.getMessage() : what + " (" + cause.getMessage() + ")";
        }
        if (s.getCode() == Status.Code.UNAVAILABLE) {
            what = "cannot reach the apiserver at " + client.server()
                    + (what.isEmpty() ? "" : ": " + what);
        }
        return s.getCode() + (what.isEmpty() ? "" : ": " + what);
    }

    /** A whole number of seconds from the environment; exits 2 when it is not one. */
    private static long seconds(String key, long fallback) {
        String v = env(key, String.valueOf(fallback));
        try {
            long n = Long.parseLong(v);
            if (n >= 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        System.exit(fail(2, key + " must be a whole number of seconds, not \"" + v + "\""));
        return fallback;
    }

    private static String env(String key, String fallback) {
        String v = System.getenv(key);
        return v == null || v.isBlank() ? fallback : v.strip();
    }

    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    /** The one line a failure prints; returns the exit code. */
    private static int fail(int code, String message) {
        System.out.flush();
        System.err.println(PROG + ": error: " + message);
        return code;
    }
}
