//! Device inventory: the device model and the parsers that build it from what Windows hosts report.
