"""The bench: its file (config, parse, reader, connections, limits), assembling its devices
(assemble, real), the calibrations it runs with, describing its devices, and example benches."""
