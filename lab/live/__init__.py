"""The live view (``optgen live``) and the run browser (``optgen show``): a page served on 127.0.0.1
that shows camera frames with the output window, the sensor grid and saturated pixels over them
(decision 0022)."""
