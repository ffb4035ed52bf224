"""On a worker's PYTHONPATH, it hides the real cramjam: the worker then lacks snappy, lz4 and zstd."""

raise ImportError("cramjam is hidden from this process by the test")
