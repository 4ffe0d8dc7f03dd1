"""The lab: the public API (api), the bench (bench/), runs (run/, runfile/), judging them (evaluate/),
the model (model/) and the command line (cli/)."""
