"""kemuctl's pieces: one module per verb (`cmd_*`), plus the printers, parsers and helpers
they share. `kemu.cli.kemuctl` is the entry point that wires them together."""
