//! The in-memory catalog: documents indexed by KB, product and CVE for `catalog show`, stats and the engine.
