"""kemu's embedded store: an etcd v3 API subset served from SQLite.

The apiserver talks to it exactly as it would talk to a real etcd (and can be
pointed at one instead); `etcdctl` works against it. See server.py for the
entry points, mvcc.py for the revision semantics and writer.py for the group
commit that makes every acknowledged write durable.
"""
