"""The lab: bench file, bench assembly, seed sources, run loop, storage and the CLI."""
