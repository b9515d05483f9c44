"""Command-line entry points: `kemu` (cluster lifecycle, components) and `kemuctl`."""
