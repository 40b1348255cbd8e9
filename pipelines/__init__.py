"""wirestream pipelines: the command line, the options and the one graph."""
