"""One module per pipeline stage; sources and sinks live in wirestream.transforms.io."""
