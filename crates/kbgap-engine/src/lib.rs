//! The assessment engine: a pure function of (catalog, device, settings) giving missing KBs with evidence.
