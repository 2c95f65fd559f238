//! torsion-protocols: sans-IO codecs and protocols built on the reactor.
