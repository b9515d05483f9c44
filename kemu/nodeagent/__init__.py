"""The node agent: kemu's kubelet.

One agent runs per node (VM). It registers the Node, renews its Lease, runs the pods bound
to it as Docker containers (a pause sandbox owning the network namespace plus the app
containers joined to it), reports their status, and serves logs and exec over the NodeAgent
gRPC service. Everything it creates in Docker carries `io.kemu.*` labels, which is how it
finds its own containers again after a restart.
"""
