"""run.h5: writing it frame by frame so it survives kill -9, and the one reader every other
module reads it through; the contact sheet."""
