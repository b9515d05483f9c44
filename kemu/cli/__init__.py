"""Command-line entry points: `kemu` (cluster lifecycle, components) and `kemuctl`.

gRPC's C core writes its own log lines to stderr (a failed bind, a refused connection);
the commands already report those in one line each, so the core is kept quiet unless the
user asks for it with GRPC_VERBOSITY. This must run before grpc is imported.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")
