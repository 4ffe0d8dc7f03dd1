"""optgen under bluesky (extra ``bluesky``): ophyd-async devices over the drivers of an open bench,
plans, and a suspender for laser faults (decision 0023). The public face is ``optgen.bluesky``.

    device_thread   the one thread every driver call runs on
    laser, slm, camera, bench   the devices; ``bench.devices(bench)`` makes the composite
    patterns        pattern ids an SLM device shows
    frame_file      the camera's HDF5 frame file and its stream documents
    plans           generate, scan, capturing, dark_frame
    suspenders      a laser fault or open interlock suspends the RunEngine
    metadata        the bench facts in a start document
"""
