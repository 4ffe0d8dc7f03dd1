"""A run: seeds -> patterns -> SLM -> capture -> register -> store, with every exit path safe
(generate), the capture loops, the storage worker, the laser guard, colour runs, and the
faults a test or benchmark can plant."""
