"""The kemu.v1 API types: generated protobuf code (v1/, etcd/) and small helpers over it."""
