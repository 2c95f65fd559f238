//! torsion-threaded: a port of Python's `socketserver`.
