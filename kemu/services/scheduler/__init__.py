"""The kemu scheduler: binds pending pods to nodes, as kube-scheduler does.

It is a client of the apiserver like every other component: informers on pods and nodes
feed a local cache and a queue of pending pods; each scheduling cycle runs filter and
score plugins over the cached nodes (no server round trip per pod) and binds the winner.
Nothing here is imported by other components; they meet only through the API.
"""
