"""The API server: kemu.v1 over gRPC, backed by any etcd v3 API store."""
